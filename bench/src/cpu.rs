//! CPU time of this process (all threads, user and system), from
//! `/proc/self/stat`. The emulators run in other processes, so time spent
//! waiting for them is not in it.

use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Clock ticks per second for `/proc` times: `getconf CLK_TCK`, else the
/// Linux value of 100.
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}

/// utime and stime (fields 14 and 15 of `/proc/self/stat`); they include
/// threads that have already exited.
pub fn process_cpu(ticks_per_second: u64) -> std::io::Result<CpuTime> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    parse_stat(&stat, ticks_per_second).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "unexpected /proc/self/stat format",
        )
    })
}

fn parse_stat(stat: &str, ticks_per_second: u64) -> Option<CpuTime> {
    // The command name (field 2) is in parentheses and may hold spaces; the
    // fields after the last ')' start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |field: usize| -> Option<Duration> {
        let value: u64 = fields.get(field - 3)?.parse().ok()?;
        Some(Duration::from_nanos(
            value * 1_000_000_000 / ticks_per_second,
        ))
    };
    Some(CpuTime {
        user: ticks(14)?,
        system: ticks(15)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_an_awkward_name() {
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 3 0 1 0";
        let cpu = parse_stat(stat, 100).expect("parses");
        assert_eq!(cpu.user, Duration::from_millis(1500));
        assert_eq!(cpu.system, Duration::from_millis(250));
    }
}
