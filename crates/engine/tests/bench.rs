//! Throughput of the engine (plain and encrypted) against the kernel's vxlan, in one run (not a
//! timed test):
//!
//! ```text
//! cargo test --release -p weft-engine --test bench -- --ignored --nocapture
//! ```
//! Env: `WEFT_BENCH_SECS` (default 5), `WEFT_BENCH_STREAMS` (iperf3 -P, default 1), `WEFT_BENCH_ROUNDS` (default 2), `WEFT_BENCH_ONLY`
//! (`engine`, `kernel`, `engine-kernel`, `kernel-engine`, `encrypted`: one path, e.g. under a
//! profiler).

mod common;

use common::*;

fn secs() -> u32 {
    std::env::var("WEFT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

/// Mean ping round trip (ms) container to container, 200 pings 10 ms apart.
fn rtt(lab: &Lab) -> f64 {
    let out = run_in(
        &lab.hosts[0].ctr,
        "ping",
        &["-q", "-c", "200", "-i", "0.01", &v4(2).to_string()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // rtt min/avg/max/mdev = 0.031/0.045/0.090/0.010 ms
    text.lines()
        .find_map(|l| l.split(" = ").nth(1))
        .and_then(|v| v.split('/').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rtt in {text}"))
}

async fn one(uplinks: [Uplink; 2]) -> f64 {
    let mtu = if uplinks.contains(&Uplink::Encrypted) {
        SECURE_MTU
    } else {
        MTU
    };
    let lab = Lab::new(uplinks, mtu).await;
    assert!(ping(&lab.hosts[0].ctr, &[&v4(2).to_string()]));
    eprintln!("  {uplinks:?}: ping rtt {:.3} ms", rtt(&lab));
    let g = iperf3(&lab.hosts[0].ctr, &lab.hosts[1].ctr, v4(2), secs(), false);
    if uplinks[0] != Uplink::Kernel && uplinks[0] == uplinks[1] {
        let s = lab.engine(0).stats();
        let r = lab.engine(1).stats();
        let (t, r) = (&s.network(VNI).unwrap().tx, &r.network(VNI).unwrap().rx);
        eprintln!(
            "  sender: {} frames -> {} datagrams; receiver: {} datagrams -> {} tap writes ({} coalesced)",
            t.frames, t.packets, r.packets, r.frames, r.coalesced
        );
    }
    g
}

#[tokio::test]
#[ignore = "benchmark: run by hand, in release"]
async fn tcp_single_stream_engine_vs_kernel() {
    let rounds: usize = std::env::var("WEFT_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let mut rows = Vec::new();
    if let Ok(only) = std::env::var("WEFT_BENCH_ONLY") {
        // For profiling one path: engine, kernel, engine-kernel, kernel-engine.
        let ups = match only.as_str() {
            "kernel" => [Uplink::Kernel, Uplink::Kernel],
            "engine-kernel" => [Uplink::Engine, Uplink::Kernel],
            "kernel-engine" => [Uplink::Kernel, Uplink::Engine],
            "encrypted" => [Uplink::Encrypted, Uplink::Encrypted],
            _ => [Uplink::Engine, Uplink::Engine],
        };
        let g = one(ups).await;
        eprintln!("{only}: {g:.2} Gbit/s");
        return;
    }
    for round in 1..=rounds {
        let k = one([Uplink::Kernel, Uplink::Kernel]).await;
        let e = one([Uplink::Engine, Uplink::Engine]).await;
        let m = one([Uplink::Engine, Uplink::Kernel]).await;
        let m2 = one([Uplink::Kernel, Uplink::Engine]).await;
        let x = one([Uplink::Encrypted, Uplink::Encrypted]).await;
        eprintln!(
            "round {round}: kernel<->kernel {k:.2} Gbit/s, engine<->engine {e:.2} Gbit/s \
             (ratio {:.2}), engine->kernel {m:.2}, kernel->engine {m2:.2}, encrypted {x:.2} \
             (ratio {:.2})",
            e / k,
            x / k
        );
        rows.push((k, e, m, m2, x));
    }
    type Row = (f64, f64, f64, f64, f64);
    let avg = |f: fn(&Row) -> f64| rows.iter().map(f).sum::<f64>() / rows.len() as f64;
    let (k, e, x) = (avg(|r| r.0), avg(|r| r.1), avg(|r| r.4));
    eprintln!(
        "mean over {rounds} rounds of {} s: kernel {k:.2}, engine {e:.2} Gbit/s, ratio {:.2}; \
         engine->kernel {:.2}, kernel->engine {:.2}; encrypted {x:.2} Gbit/s, ratio {:.2}",
        secs(),
        e / k,
        avg(|r| r.2),
        avg(|r| r.3),
        x / k
    );
}
