//! Numbers as people read them: sizes, rates and durations.

pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} kB", n / 1e3)
    } else {
        format!("{n:.0} B")
    }
}

pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// "12.3 MB of 1.40 GB · 8.1 MB/s · 2 min 3 s left", from the progress since `started`.
pub fn transfer(done: u64, total: u64, started: (u64, f64), now: f64) -> String {
    let mut text = format!("{} of {}", bytes(done), bytes(total));
    let seconds = (now - started.1) / 1000.0;
    let moved = done.saturating_sub(started.0) as f64;
    if seconds > 0.5 && moved > 0.0 {
        let rate = moved / seconds;
        text.push_str(&format!(" · {}/s", bytes(rate as u64)));
        if total > done {
            text.push_str(&format!(
                " · {} left",
                duration((total - done) as f64 / rate)
            ));
        }
    }
    text
}

/// A run's time: "9.6 s" under a minute.
pub fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{:.1} s", s.max(0.0))
    } else {
        duration(s)
    }
}
