//! Process figures for `/api/v1/health/metrics`: memory and CPU time.

use serde::Serialize;
use utoipa::ToSchema;

/// Resident memory of this instance (null where /proc is unavailable).
#[derive(Debug, Serialize, ToSchema)]
pub struct Memory {
    #[schema(example = 18_874_368)]
    pub rss_bytes: Option<u64>,
    #[schema(example = 20_971_520)]
    pub peak_rss_bytes: Option<u64>,
}

/// CPU time this instance has used.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cpu {
    #[schema(example = 120)]
    pub user_ms: u64,
    #[schema(example = 30)]
    pub system_ms: u64,
}

/// Reads `VmRSS` and `VmHWM` (kB) from /proc/self/status.
pub fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Memory { rss_bytes: field("VmRSS:"), peak_rss_bytes: field("VmHWM:") }
}

pub fn cpu() -> Cpu {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let ms = |t: libc::timeval| (t.tv_sec as u64) * 1000 + (t.tv_usec as u64) / 1000;
    Cpu { user_ms: ms(usage.ru_utime), system_ms: ms(usage.ru_stime) }
}
