//! CPU time of a process from `/proc/<pid>/stat` (Linux), shared by the
//! benchmark examples.

/// User + system CPU seconds the process has used so far (0 when unknown).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces): utime is the
    // 12th and stime the 13th, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
