//! Recorded lifecycle streams (`ctb watch --record`) replayed through the
//! same watcher: its events, its stop decision and the commands it sends
//! must match the recording.

mod util;

#[test]
fn recorded_lifecycles_replay_to_the_same_decisions() {
    let dir = util::repo().join("fixtures/lifecycle");
    let mut raws: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "raw"))
        .collect();
    raws.sort();
    assert!(raws.len() >= 4, "{raws:?}");
    for raw in raws {
        let out = util::ctb_bare().args(["watch", "--replay"]).arg(&raw).output().unwrap();
        assert!(out.status.success(), "{}: {}", raw.display(), String::from_utf8_lossy(&out.stderr));
        let got = String::from_utf8_lossy(&out.stdout).into_owned();
        let expected = std::fs::read_to_string(raw.with_extension("expected.jsonl")).unwrap();
        assert_eq!(got, expected, "{}", raw.display());
        // The watcher sent what it sent live.
        let mut commands = raw.clone().into_os_string();
        commands.push(".commands");
        let sent: Vec<String> = got
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["sent"].as_str().map(str::to_owned))
            .collect();
        let recorded: Vec<String> = std::fs::read_to_string(commands).unwrap().lines().map(str::to_owned).collect();
        assert_eq!(sent, recorded, "{}", raw.display());
        assert!(got.contains(r#""event":"watch-end""#));
    }
}

#[test]
fn a_recording_cut_short_ends_as_server_exited() {
    let dir = std::env::temp_dir().join(format!("ctb-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = util::repo().join("fixtures/lifecycle/create-rename-close.raw");
    let raw = std::fs::read(&src).unwrap();
    let cut = dir.join("cut.raw");
    std::fs::write(&cut, &raw[..raw.len() / 2]).unwrap();
    let mut listings = src.clone().into_os_string();
    listings.push(".listings");
    std::fs::copy(listings, dir.join("cut.raw.listings")).unwrap();
    let out = util::ctb_bare().args(["watch", "--replay"]).arg(&cut).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains(r#"{"event":"watch-end","reason":"server-exited"}"#), "{s}");
    std::fs::remove_dir_all(dir).unwrap();
}
