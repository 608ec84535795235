// snow-emulator web UI: two small behaviours, no framework.
// 1. The navigator filter hides modules whose title does not contain the typed text.
// 2. Regions marked data-live are fetched again every two seconds while the page is visible,
//    so run and transaction states move while an import runs. Regions are matched by their
//    data-live name; an edited form is never replaced (it is not marked live).
(function () {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  const filter = document.getElementById("nav-filter");
  if (filter) {
    filter.form.addEventListener("submit", function (event) { event.preventDefault(); });
    filter.addEventListener("input", function () {
      const text = filter.value.trim().toLowerCase();
      document.querySelectorAll(".menus .menu").forEach(function (menu) {
        let shown = 0;
        menu.querySelectorAll("li").forEach(function (li) {
          const hit = !text || li.textContent.toLowerCase().includes(text);
          li.hidden = !hit;
          if (hit) shown += 1;
        });
        menu.hidden = text && shown === 0 && !menu.textContent.toLowerCase().includes(text);
        const details = menu.querySelector("details");
        if (details && text) details.open = true;
      });
    });
  }
  if (!document.querySelector("[data-live]")) return;
  async function refresh() {
    if (document.visibilityState !== "visible") return;
    try {
      const response = await fetch(location.href, { headers: { "X-Live": "1" }, credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      document.querySelectorAll("[data-live]").forEach(function (region) {
        const next = fresh.querySelector('[data-live="' + region.dataset.live + '"]');
        if (next && next.innerHTML !== region.innerHTML) region.innerHTML = next.innerHTML;
      });
    } catch (e) { /* the next tick tries again */ }
  }
  setInterval(refresh, 2000);
})();
