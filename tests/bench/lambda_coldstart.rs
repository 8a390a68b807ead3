//! Runs a function's release binary as Lambda runs it (under `support::runtime_api`) and prints,
//! per function: cold start (exec to first answered invocation, secret read included) as the
//! median of several runs, warm invocation median, peak RSS after N invocations, and binary size.
//!
//! Usage (make bench runs it): `lambda-coldstart [--runs 15] [--invocations 1000] FUNCTION=EVENT...`
//! e.g. `health=events/live.json`. Needs AWS_ENDPOINT_URL (the local endpoint) like the tests.

use baatcheet_tests::{TestStack, runtime_api::RuntimeApi};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.split_whitespace().next()?.parse().ok()
}

struct Spec {
    function: String,
    event: String,
}

async fn spawn(bin: &PathBuf, stack: &TestStack, api: &RuntimeApi) -> Result<tokio::process::Child, BoxError> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.envs(&stack.env)
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    Ok(cmd.spawn()?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut runs = 15usize;
    let mut invocations = 1000usize;
    let mut specs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().ok_or("--runs N")?.parse()?,
            "--invocations" => invocations = args.next().ok_or("--invocations N")?.parse()?,
            spec => {
                let (f, e) = spec.split_once('=').ok_or("FUNCTION=EVENT")?;
                specs.push(Spec { function: f.into(), event: e.into() });
            }
        }
    }
    let stack = TestStack::new().await;
    println!(
        "| function | binary (stripped) | cold start median | cold start min..max | warm invocation median | peak RSS after {invocations} |"
    );
    println!("|---|---|---|---|---|---|");
    for spec in specs {
        let bin = root().join("target/release").join(&spec.function);
        let event = std::fs::read(root().join(&spec.event))?;
        let size = std::fs::metadata(&bin)?.len();
        let mut colds = Vec::new();
        for _ in 0..runs {
            let api = RuntimeApi::start().await?;
            let answer = api.invoke(event.clone());
            let t0 = Instant::now();
            let mut child = spawn(&bin, &stack, &api).await?;
            let a = tokio::time::timeout(Duration::from_secs(10), answer).await??;
            if a.error {
                return Err(format!("{}: invocation error: {}", spec.function, String::from_utf8_lossy(&a.body)).into());
            }
            colds.push((a.at - t0).as_secs_f64() * 1000.0);
            child.kill().await?;
        }
        let (min, max) = colds.iter().fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let cold = median(&mut colds);

        let api = RuntimeApi::start().await?;
        let child = spawn(&bin, &stack, &api).await?;
        let pid = child.id().ok_or("no pid")?;
        let mut warm = Vec::with_capacity(invocations);
        for _ in 0..invocations {
            let t = Instant::now();
            let a = tokio::time::timeout(Duration::from_secs(10), api.invoke(event.clone())).await??;
            warm.push((a.at - t).as_secs_f64() * 1000.0);
        }
        let rss = peak_rss_kb(pid).unwrap_or(0);
        drop(child);
        println!(
            "| {} | {:.1} MB | {:.1} ms | {:.1}..{:.1} ms | {:.3} ms | {:.1} MB |",
            spec.function,
            size as f64 / 1e6,
            cold,
            min,
            max,
            median(&mut warm),
            rss as f64 / 1024.0
        );
    }
    Ok(())
}
