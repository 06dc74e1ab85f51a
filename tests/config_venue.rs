//! The `[venue]` table and its environment overrides through the agent's configuration
//! (src/config, src/venue/config.rs): single-terminal mode without it, the URL and the
//! password from the environment, the timeout against the deadline, and a build without
//! the `venue` feature refusing it by name.

fn agent_config(
    text: &str,
    env: &[(&str, &str)],
) -> Result<concession_agent::config::Config, String> {
    let base = format!("{text}\n[ats]\nurl = \"http://127.0.0.1:9\"\napikey = \"k\"\n");
    let mut raw = concession_agent::config::RawConfig::parse(&base, std::path::Path::new("t"))
        .map_err(|e| e.to_string())?;
    raw.apply_env(|k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    });
    concession_agent::config::Config::from_raw(raw).map_err(|e| e.to_string())
}

#[test]
fn without_a_venue_table_or_url_the_agent_is_the_single_terminal_agent() {
    let c = agent_config("", &[("CONCESSION_VENUE_PASSWORD", "pw")]).unwrap();
    assert!(c.venue.is_none());
}

#[cfg(not(feature = "venue"))]
#[test]
fn a_venue_table_in_a_build_without_venue_mode_is_refused_by_name() {
    let e = agent_config("[venue]\nurl = \"postgres://t@127.0.0.1/v\"\n", &[]).unwrap_err();
    assert!(e.contains("`venue` feature"), "{e}");
}

#[cfg(feature = "venue")]
#[test]
fn venue_mode_denies_unlisted_barcodes_by_default_and_the_setting_wins() {
    use concession_agent::config::Unlisted;
    let single = agent_config("", &[]).unwrap();
    assert_eq!(single.cache.unlisted, Unlisted::Lookup);
    let url = [("CONCESSION_VENUE_URL", "postgres://t@127.0.0.1:5/v")];
    assert_eq!(
        agent_config("", &url).unwrap().cache.unlisted,
        Unlisted::Deny
    );
    let asked = agent_config("[cache]\nunlisted = \"lookup\"\n", &url).unwrap();
    assert_eq!(asked.cache.unlisted, Unlisted::Lookup);
}

#[cfg(feature = "venue")]
#[test]
fn the_environment_url_turns_venue_mode_on_and_the_password_stays_secret() {
    let c = agent_config(
        "",
        &[
            ("CONCESSION_VENUE_URL", "postgres://t@127.0.0.1:5/v"),
            ("CONCESSION_VENUE_PASSWORD", "hunter2"),
        ],
    )
    .unwrap();
    let v = c.venue.as_ref().expect("venue mode");
    assert_eq!(v.url, "postgres://t@127.0.0.1:5/v");
    assert_eq!(v.password.as_ref().unwrap().expose(), "hunter2");
    assert!(!format!("{c:?}").contains("hunter2"));
    let e = agent_config(
        "deadline_ms = 500\n[venue]\nurl = \"postgres://t@127.0.0.1/v\"\ntimeout_ms = 500\n",
        &[],
    )
    .unwrap_err();
    assert!(e.contains("venue.timeout_ms"), "{e}");
    let e = agent_config("", &[("CONCESSION_VENUE_URL", "mysql://x")]).unwrap_err();
    assert!(e.contains("CONCESSION_VENUE_URL"), "{e}");
}
