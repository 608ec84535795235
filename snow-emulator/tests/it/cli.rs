//! The `snow-emulator` binary's command line.

use std::process::Command;

fn emulator() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snow-emulator"));
    for var in [
        "SNOW_ADMIN_PASSWORD",
        "SNOW_INTEGRATION_PASSWORD",
        "SNOW_OAUTH_CLIENT_ID",
        "SNOW_OAUTH_CLIENT_SECRET",
        "SNOW_LISTEN",
        "SNOW_DB",
    ] {
        c.env_remove(var);
    }
    c
}

#[test]
fn help_documents_options_and_environment() {
    let out = emulator().arg("--help").output().expect("run binary");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen <ADDR>",
        "[env: SNOW_LISTEN]",
        "[default: 127.0.0.1:8080]",
        "--db <PATH>",
        "--catalog <DIR>",
        "--public-url <URL>",
        "--tls-cert <PEM>",
        "--faults <FILE>",
        "--tls-key <PEM>",
        "[env: SNOW_ADMIN_PASSWORD]",
        "[env: SNOW_INTEGRATION_PASSWORD]",
        "[env: SNOW_OAUTH_CLIENT_ID]",
        "[env: SNOW_OAUTH_CLIENT_SECRET]",
        "Exit status",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    assert!(
        !help.contains("fnms-export-secret"),
        "--help shows a secret:\n{help}"
    );
}

#[test]
fn refuses_default_credentials_off_loopback() {
    let out = emulator()
        .args(["--listen", "0.0.0.0:0", "--db", ":memory:"])
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("default credentials"), "{stderr}");
    assert!(stderr.contains("SNOW_ADMIN_PASSWORD"), "{stderr}");
    // A usage error is exit status 2 as well.
    let out = emulator()
        .args(["--tls-cert", "x.pem"])
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bad_fault_plan_file_stops_the_start_with_its_name_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[fault]]\nkind = \"segment_code\"\n").expect("write");
    for (file, why) in [
        (&missing, "cannot read the fault plan"),
        (&bad, "needs `code`"),
    ] {
        let out = emulator()
            .args(["--listen", "127.0.0.1:0", "--db", ":memory:", "--faults"])
            .arg(file)
            .output()
            .expect("run binary");
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    }
}
