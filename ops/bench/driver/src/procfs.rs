//! What /proc tells about a process: memory, CPU time, the open-files limit.

use std::time::Instant;

/// (VmRSS, VmHWM) of a process, kB.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// This process's soft limit of open files.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// User + system CPU time of a process (`self` or a pid), in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (which may hold spaces), fields 3.. of proc(5): utime is 14,
    // stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Ticks the whole machine was busy (all CPUs: everything but idle and iowait).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    Some(v.iter().take(8).sum::<u64>() - v.get(3)? - v.get(4)?)
}

/// Linux's USER_HZ, the unit of /proc's CPU times: 100 on every mainstream configuration.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU used by the server, by this driver and by the whole machine over a measurement.
pub struct Cpu {
    server: Option<u32>,
    started: Instant,
    server_ticks: Option<u64>,
    driver_ticks: Option<u64>,
    machine_ticks: Option<u64>,
}

/// Cores busy on average over a measurement.
pub struct Cores {
    pub server: Option<f64>,
    pub driver: Option<f64>,
    /// Everything: the server, the driver, PostgreSQL, NATS, Redis and whatever else runs.
    pub machine: Option<f64>,
}

impl Cpu {
    pub fn start(server: Option<u32>) -> Self {
        Self {
            server,
            started: Instant::now(),
            server_ticks: server.and_then(|p| cpu_ticks(&p.to_string())),
            driver_ticks: cpu_ticks("self"),
            machine_ticks: machine_busy_ticks(),
        }
    }

    /// Cores busy on average since `start`.
    pub fn cores(&self) -> Cores {
        let secs = self.started.elapsed().as_secs_f64();
        let used = |before: Option<u64>, now: Option<u64>| {
            Some(now?.saturating_sub(before?) as f64 / TICKS_PER_SECOND / secs)
        };
        Cores {
            server: used(self.server_ticks, self.server.and_then(|p| cpu_ticks(&p.to_string()))),
            driver: used(self.driver_ticks, cpu_ticks("self")),
            machine: used(self.machine_ticks, machine_busy_ticks()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_readable() {
        let (rss, hwm) = memory(std::process::id()).expect("VmRSS and VmHWM");
        assert!(rss > 0 && hwm >= rss);
        assert!(open_files_limit().is_some());
        assert!(cpu_ticks("self").is_some());
        let cpu = Cpu::start(Some(std::process::id()));
        let cores = cpu.cores();
        for c in [cores.server, cores.driver, cores.machine] {
            assert!(c.is_some_and(|c| c >= 0.0));
        }
    }
}
