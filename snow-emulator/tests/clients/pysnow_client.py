"""Drives the emulator with pysnow (PyPI), unmodified, over HTTPS.

Run by snow-emulator/tests/it/platform/clients.rs with SNOW_HOST (host:port),
SNOW_CLIENT_ID and SNOW_CLIENT_SECRET set and REQUESTS_CA_BUNDLE naming the test CA.
Prints one line per step; exits non-zero on the first failure.
"""

import os
import sys

import pysnow
import requests

HOST = os.environ["SNOW_HOST"]
CLIENT_ID = os.environ["SNOW_CLIENT_ID"]
CLIENT_SECRET = os.environ["SNOW_CLIENT_SECRET"]


def check(cond, what):
    if not cond:
        print("FAILED: " + what)
        sys.exit(1)
    print("ok: " + what)


def oauth_client(user, password):
    # pysnow's OAuthClient sends the client id and secret in an HTTP Basic header
    # (requests-oauthlib's default, RFC 6749 section 2.3.1).
    client = pysnow.OAuthClient(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, host=HOST
    )
    client.set_token(client.generate_token(user, password))
    return client


admin = oauth_client("admin", "admin")
check(True, "OAuth login (password grant, client in Basic header)")

sources = admin.resource(api_path="/table/sys_data_source")
for i in range(5):
    created = sources.create(payload={"name": "pysnow-%d" % i, "format": "CSV"}).one()
    check(created["name"] == "pysnow-%d" % i, "insert pysnow-%d" % i)
check(True, "insert 5 records")

names = []
offset = 0
pages = 0
while True:
    page = list(
        sources.get(
            query="nameSTARTSWITHpysnow-^ORDERBYDESCname", limit=2, offset=offset
        ).all()
    )
    if not page:
        break
    pages += 1
    names.extend(r["name"] for r in page)
    offset += 2
check(pages == 3, "encoded query paged over 3 pages (got %d)" % pages)
check(
    names == ["pysnow-4", "pysnow-3", "pysnow-2", "pysnow-1", "pysnow-0"],
    "ORDERBYDESC order across pages: %s" % names,
)

first = list(sources.get(query={"name": "pysnow-0"}).all())[0]
sys_id = first["sys_id"]
one = list(sources.get(query={"sys_id": sys_id}).all())
check(len(one) == 1 and one[0]["name"] == "pysnow-0", "get by sys_id")

updated = sources.update(query={"sys_id": sys_id}, payload={"format": "JSON"})
check(updated["format"] == "JSON", "update")

deleted = sources.delete(query={"sys_id": sys_id})
check(deleted["status"] == "record deleted", "delete")
check(not list(sources.get(query={"sys_id": sys_id}).all()), "deleted record is gone")

schedules = admin.resource(api_path="/table/scheduled_import_set")
schedules.parameters.display_value = True
schedules.parameters.exclude_reference_link = True
schedule = list(schedules.get(query={"name": "FNMS Import Schedule"}).all())[0]
check(
    schedule["data_source"] == "FNMS Data Source" and schedule["run_type"] == "Periodically",
    "display values: %s / %s" % (schedule["data_source"], schedule["run_type"]),
)

integration = oauth_client("fnms.integration", "integration")
runs = integration.resource(api_path="/table/x_fls_flexera_fnms_import_run")
check(list(runs.get(query={}).all()) == [], "integration user reads the app's tables")
users = integration.resource(api_path="/table/sys_user")
try:
    users.create(payload={"user_name": "pysnow-intruder"}).one()
    check(False, "403 for creating a user with the integration role")
except requests.exceptions.HTTPError as e:
    check(e.response.status_code == 403, "403 for creating a user with the integration role")
    body = e.response.json()
    check(body["status"] == "failure", "ServiceNow's error envelope")
admin_users = admin.resource(api_path="/table/sys_user")
check(
    not list(admin_users.get(query={"user_name": "pysnow-intruder"}).all()),
    "the refused insert changed nothing",
)
print("PYSNOW OK")
