//! The Prometheus textfile (issue 14, item 2): written while the agent runs and at
//! stop, parsed as node_exporter would, counters moving with decisions.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use concession_agent::config::MetricsSettings;
use concession_agent::metrics::{parse, Parsed};
use concession_agent::scan::AgentRequest;
use support::{wait_for, Harness};

/// The file parsed, once it exists and satisfies `ok`.
fn wait_file(path: &std::path::Path, ok: impl Fn(&Parsed) -> bool) -> Parsed {
    wait_for(Duration::from_secs(15), || {
        let text = std::fs::read_to_string(path).ok()?;
        let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        ok(&p).then_some(p)
    })
    .unwrap_or_else(|| {
        panic!(
            "metrics file never as expected: {}",
            std::fs::read_to_string(path).unwrap_or_default()
        )
    })
}

const FAMILIES: [(&str, &str); 9] = [
    ("concession_decisions_total", "counter"),
    ("concession_approved_cents_total", "counter"),
    ("concession_decision_duration_seconds", "histogram"),
    ("concession_online", "gauge"),
    ("concession_offline_exposure_cents", "gauge"),
    ("concession_pending_uploads", "gauge"),
    ("concession_ats_calls_total", "counter"),
    ("concession_ats_budget_remaining", "gauge"),
    ("concession_store_free_bytes", "gauge"),
];

#[test]
fn the_metrics_textfile_parses_with_help_and_type_and_its_counters_follow_decisions() {
    let mut h = Harness::start("events = [\"EVENT01\"]");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concession.prom");
    h.agent.set_metrics(MetricsSettings {
        textfile: Some(path.clone()),
        interval: Duration::from_millis(100),
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let agent = std::thread::spawn(move || {
        h.agent.run(&rx, &stop2).unwrap();
        h
    });
    let scan = |barcode: &str| {
        tx.send(AgentRequest::Scan(concession_agent::scan::ScanEvent {
            input: concession_agent::scan::barcode::classify(barcode),
            amount_cents: None,
            request_id: None,
            received_at_ms: concession_agent::clock::system().wall_ms(),
            origin: concession_agent::scan::Origin::Stdin,
        }))
        .unwrap()
    };

    // Before any scan: every family is there, with HELP and TYPE, counters at zero.
    let p = wait_file(&path, |_| true);
    for (name, kind) in FAMILIES {
        assert_eq!(p.types.get(name).map(String::as_str), Some(kind), "{name}");
        assert!(p.help.contains_key(name), "{name} has no HELP");
    }
    assert_eq!(p.sum("concession_decisions_total"), 0.0);
    assert_eq!(p.value("concession_online", &[]), Some(1.0));
    assert!(p.value("concession_store_free_bytes", &[]).unwrap() > 0.0);
    for window in ["minute", "day"] {
        assert!(
            p.value("concession_ats_budget_remaining", &[("window", window)])
                .is_some(),
            "{window}"
        );
    }

    scan("100000000001");
    scan("999999999999");
    let p = wait_file(&path, |p| p.sum("concession_decisions_total") == 2.0);
    let approved = [
        ("decision", "approve"),
        ("reason", "approved"),
        ("source", "live"),
    ];
    assert_eq!(p.value("concession_decisions_total", &approved), Some(1.0));
    assert_eq!(
        p.value(
            "concession_decisions_total",
            &[
                ("decision", "deny"),
                ("reason", "unknown_ticket"),
                ("source", "live")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        p.value("concession_approved_cents_total", &[]),
        Some(2000.0)
    );
    assert_eq!(
        p.value("concession_decision_duration_seconds_count", &[]),
        Some(2.0)
    );
    assert_eq!(
        p.value(
            "concession_decision_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(2.0)
    );
    assert!(
        p.value("concession_ats_calls_total", &[("result", "ok")])
            .unwrap()
            >= 2.0
    );
    // Label sets are the bounded ones: no barcode, id or request anywhere.
    for s in &p.samples {
        for (k, v) in &s.labels {
            assert!(
                ["decision", "reason", "source", "result", "window", "le", "version", "terminal"]
                    .contains(&k.as_str()),
                "{} has label {k}",
                s.name
            );
            assert!(!v.contains("10000000000"), "{} label {k}={v}", s.name);
        }
    }

    // A third scan, then stop: the file written at stop has the final counters.
    scan("100000000001");
    stop.store(true, Ordering::SeqCst);
    drop(tx);
    let h = agent.join().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let p = parse(&text).unwrap();
    assert_eq!(p.sum("concession_decisions_total"), 3.0, "{text}");
    assert_eq!(
        p.value(
            "concession_decisions_total",
            &[
                ("decision", "deny"),
                ("reason", "already_redeemed"),
                ("source", "cache")
            ]
        )
        .or_else(|| p.value(
            "concession_decisions_total",
            &[
                ("decision", "deny"),
                ("reason", "already_redeemed"),
                ("source", "live")
            ]
        )),
        Some(1.0),
        "{text}"
    );
    // Renamed into place: no temporary file is left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["concession.prom".to_string()]);
    h.agent.shutdown();
}

#[test]
fn the_real_binary_writes_the_textfile_named_in_metrics_and_a_last_one_at_stop() {
    let sandbox = support::sandbox();
    let mut agent = support::RunningAgent::start(
        &sandbox.base_url(),
        "[metrics]\ntextfile = \"{dir}/stand.prom\"\ninterval_s = 1",
    );
    let path = agent.dir.path().join("stand.prom");
    let p = wait_file(&path, |_| true);
    assert_eq!(p.sum("concession_decisions_total"), 0.0);
    agent.scan("100000000001");
    agent.wait_decisions(1);
    let p = wait_file(&path, |p| p.sum("concession_decisions_total") == 1.0);
    assert_eq!(
        p.value("concession_approved_cents_total", &[]),
        Some(2000.0)
    );
    assert_eq!(
        p.value(
            "concession_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("terminal", "status-stand")
            ]
        ),
        Some(1.0)
    );
    agent.scan("999999999999");
    agent.wait_decisions(2);
    assert!(agent.stop().success());
    // The file written at stop carries the last decision, whatever the interval.
    let p = parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(p.sum("concession_decisions_total"), 2.0);
}

#[test]
fn metrics_settings_out_of_range_or_in_a_missing_directory_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let parse_cfg = |metrics: &str| {
        let text = format!(
            "store_dir = {:?}\n[ats]\nurl = \"http://127.0.0.1:9\"\napikey = \"k\"\n[metrics]\n{metrics}\n",
            dir.path().join("store").display().to_string()
        );
        let raw = concession_agent::config::RawConfig::parse(&text, std::path::Path::new("t"))
            .map_err(|e| e.to_string())?;
        concession_agent::config::Config::from_raw(raw).map_err(|e| e.to_string())
    };
    let ok = parse_cfg(&format!(
        "textfile = {:?}",
        dir.path().join("a.prom").display().to_string()
    ))
    .unwrap();
    assert_eq!(ok.metrics.textfile, Some(dir.path().join("a.prom")));
    assert_eq!(ok.metrics.interval, Duration::from_secs(5));
    let e = parse_cfg("interval_s = 0").unwrap_err();
    assert!(e.contains("metrics.interval_s"), "{e}");
    let e = parse_cfg("textfile = \"/nonexistent-dir-for-s1/a.prom\"").unwrap_err();
    assert!(
        e.contains("metrics.textfile") && e.contains("does not exist"),
        "{e}"
    );
    let e = parse_cfg("texfile = \"x\"").unwrap_err();
    assert!(e.contains("texfile"), "{e}");
    // Without [metrics] there is no file.
    assert_eq!(parse_cfg("").unwrap().metrics.textfile, None);
}
