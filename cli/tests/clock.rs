//! `roundtable clock check` against real NTP on loopback (issue 15): `chronyd` (installed by
//! `.ci/run`, configured by `chrony.conf` here) and fake UDP responders that answer garbage, a
//! kiss-of-death or a time ten minutes off, or nothing at all.

mod support;

use std::net::UdpSocket;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::BIN;

/// chronyd on a free loopback port, killed when dropped; `None` (said) when it is not installed
/// outside CI. In CI it must be there.
struct Chronyd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Chronyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chronyd() -> Option<Chronyd> {
    let installed = Command::new("chronyd").arg("-v").output().is_ok();
    if !installed {
        assert!(std::env::var_os("CI").is_none(), "CI installs chrony (.ci/run)");
        eprintln!("SKIPPED: chronyd is not installed (apt-get install chrony)");
        return None;
    }
    let dir = tempfile::tempdir().expect("a directory");
    let port = udp_port();
    let template = include_str!("chrony.conf");
    let config = template.replace("PORT", &port.to_string()).replace("DIR", &dir.path().display().to_string());
    let path = dir.path().join("chrony.conf");
    std::fs::write(&path, config).expect("written");
    let log = std::fs::File::create(dir.path().join("chronyd.log")).expect("a log");
    let child = Command::new("chronyd")
        .args(["-x", "-d", "-u", "root", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("chronyd starts");
    let chronyd = Chronyd { child, port, _dir: dir };
    // Ready once it answers.
    let ready = support::within(Duration::from_secs(10), || check(port, &[]).status.success().then_some(()));
    assert!(ready.is_some(), "chronyd answers on port {port}");
    Some(chronyd)
}

/// A free UDP port on loopback.
fn udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address").port()
}

fn check(port: u16, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["clock", "check", "--server", &format!("127.0.0.1:{port}"), "--timeout-ms", "500"])
        .args(extra)
        .output()
        .expect("roundtable clock check runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Seconds and fraction since 1900 (NTP's era 0) of `at`.
fn ntp_time(at: SystemTime) -> [u8; 8] {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = (since.as_secs() + 2_208_988_800) as u32;
    let frac = ((u64::from(since.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&secs.to_be_bytes());
    out[4..].copy_from_slice(&frac.to_be_bytes());
    out
}

/// A UDP responder on a free port that answers each request with `reply(request)`, for as
/// long as the test runs.
fn responder(reply: impl Fn(&[u8]) -> Vec<u8> + Send + 'static) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = socket.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&reply(&buf[..n]), from);
        }
    });
    port
}

/// A server reply to `request`: leap indicator 0, version 4, mode 4, `stratum`, reference
/// `reference`, receive and transmit times `skew` ahead of this machine's clock.
fn server_reply(request: &[u8], stratum: u8, reference: &[u8; 4], skew: Duration) -> Vec<u8> {
    let mut reply = vec![0u8; 48];
    reply[0] = 4 << 3 | 4;
    reply[1] = stratum;
    reply[12..16].copy_from_slice(reference);
    let now = ntp_time(SystemTime::now() + skew);
    reply[16..24].copy_from_slice(&now);
    if request.len() >= 48 {
        reply[24..32].copy_from_slice(&request[40..48]);
    }
    reply[32..40].copy_from_slice(&now);
    reply[40..48].copy_from_slice(&now);
    reply
}

#[test]
fn clock_check_against_chronyd_measures_a_small_offset() {
    let Some(chronyd) = chronyd() else { return };
    for _ in 0..3 {
        let output = check(chronyd.port, &[]);
        let text = stdout(&output);
        assert!(output.status.success(), "{text}");
        assert!(text.contains("stratum 10"), "{text}");
        assert!(text.contains("would not be fenced"), "{text}");
        let offset_ms: f64 = text
            .split("offset ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("an offset");
        // chronyd serves this machine's own clock: what is measured is the exchange's asymmetry.
        assert!(offset_ms.abs() < 50.0, "offset {offset_ms} ms: {text}");
    }
}

#[test]
fn a_server_ten_minutes_off_is_refused_and_a_tolerance_smaller_than_its_offset_fences() {
    let ten_minutes = responder(|req| server_reply(req, 2, b"GPS\0", Duration::from_secs(600)));
    let output = check(ten_minutes, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).contains("beyond the limit of 60000 ms: not used"), "{}", stdout(&output));

    let two_seconds = responder(|req| server_reply(req, 2, b"GPS\0", Duration::from_secs(2)));
    let output = check(two_seconds, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("would be fenced"), "{}", stdout(&output));
    let output = check(two_seconds, &["--tolerance-ms", "5000"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn garbage_a_kiss_of_death_and_silence_give_no_reading() {
    let garbage = responder(|_| b"this is not an NTP packet".to_vec());
    let output = check(garbage, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).contains("reply refused"), "{}", stdout(&output));

    let kiss = responder(|req| server_reply(req, 0, b"RATE", Duration::ZERO));
    let output = check(kiss, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).contains("kiss-of-death"), "{}", stdout(&output));

    // Bound, never answered: the check gives up after its timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let started = std::time::Instant::now();
    let output = check(port, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).contains("no answer"), "{}", stdout(&output));
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by the timeout");
}
