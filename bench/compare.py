"""Side-by-side training throughput: our `pretrain` against PyTorch eager (fp32, and bf16
autocast beside it), same configuration, same steps and threads, in one run.

Run through bench/compare.sh, which builds the binaries first. For each case and thread
count it runs, one process at a time:
  ours           target/release/pretrain <case settings> with evaluation, checkpoints and the
                 sample switched off; per-step times from its metrics.jsonl
  pytorch-fp32   bench/torch_ref.py train on the run's config.json (random tokens)
  pytorch-bf16   the same under torch.autocast(bfloat16)
repeated --reps times with the three interleaved (a shared machine's load falls on all alike),
and reports the median over the repetitions of each run's median ms/step (after warm-up), tokens/s, peak RSS of
the process (getrusage of the child), achieved GFLOP/s (the same FLOP count for all, from our
model's matmul FLOPs: 6 per weight per token plus attention), and that as a fraction of the
GEMM ceiling measured here (1024³ fp32 GEMM: ours via `bench matmul`, PyTorch's torch.mm)
and of the 2-core peak (115 GFLOP/s per core).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PY = sys.executable
PEAK_PER_CORE = 115.0  # GFLOP/s: 32 fp32 FLOP/cycle at ~3.6 GHz (Zen 4), 230 for 2 cores

CASES = {
    "default": [],
    "baseline": ["--arch", "baseline"],
    "large": ["--d-model", "512", "--n-layers", "8", "--n-heads", "8", "--n-kv-heads", "8", "--ffn-hidden", "1376",
              "--seq-len", "512", "--batch-size", "8"],
}


def run(cmd, threads):
    """Runs cmd on `threads` threads; returns (stdout, peak RSS of that process in MiB)."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), MATMUL_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4: this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return out.read(), usage.ru_maxrss / 1024


def ours(case, threads, steps, warmup):
    out_dir = os.path.join("runs", "compare", f"{case}-{threads}t")
    cmd = [os.path.join(ROOT, "target", "release", "pretrain"), *CASES[case], "--steps", str(warmup + steps),
           "--eval-interval", "0", "--checkpoint-interval", "0", "--sample-tokens", "0", "--log-interval", "1",
           "--out-dir", out_dir]
    _, rss = run(cmd, threads)
    with open(os.path.join(ROOT, out_dir, "metrics.jsonl")) as f:
        lines = [json.loads(l) for l in f if '"tokens_per_s"' in l]
    with open(os.path.join(ROOT, out_dir, "config.json")) as f:
        cfg = json.load(f)
    tokens = cfg["batch_size"] * cfg["seq_len"]
    timed = [m for m in lines if m["step"] > warmup]
    ms = statistics.median(tokens / m["tokens_per_s"] * 1e3 for m in timed)
    flops_per_token = timed[0]["gflops"] * 1e9 / timed[0]["tokens_per_s"]
    result = {"impl": "ours", "ms_per_step": ms, "tokens_per_s": tokens / ms * 1e3, "peak_rss_mib": rss}
    return result, os.path.join(out_dir, "config.json"), flops_per_token, cfg


def torch_run(config, threads, steps, warmup, bf16):
    cmd = [PY, "bench/torch_ref.py", "train", "--config", config, "--steps", str(steps), "--warmup", str(warmup),
           "--threads", str(threads)] + (["--bf16"] if bf16 else [])
    out, rss = run(cmd, threads)
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_rss_mib"] = rss
    return r


def summarise(runs):
    """One implementation over the repetitions: the median ms/step, the largest peak RSS."""
    ms = statistics.median(r["ms_per_step"] for r in runs)
    return {"impl": runs[0]["impl"], "ms_per_step": ms, "tokens_per_s": runs[0]["tokens_per_s"] *
            runs[0]["ms_per_step"] / ms, "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


def gemm_ceilings(threads):
    """GFLOP/s of a 1024³ fp32 GEMM: ours (Tensor::matmul) and PyTorch's (torch.mm)."""
    # No waiting for a quiet machine: on a shared one it rarely comes, and the training runs do not wait either.
    out, _ = run([os.path.join(ROOT, "target", "release", "bench"), "matmul", "--threads", str(threads),
                  "--filter", "1024³", "--quiet-wait", "0"], threads)
    row = next(l.split("\t") for l in out.splitlines() if l.count("\t") == 3 and l.split("\t")[2] == "tensor")
    t, _ = run([PY, "bench/torch_ref.py", "gemm", "--threads", str(threads)], threads)
    return float(row[3]), json.loads(t)


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return model, rustc, commit


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4, help="timed steps per run (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions of every run (median reported)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    p.add_argument("--no-bf16", action="store_true", help="skip the PyTorch bf16 autocast runs")
    args = p.parse_args()
    import torch

    cpu, rustc, commit = machine()
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"cpu: {cpu}, {os.cpu_count()} logical CPUs; python {platform.python_version()}, "
          f"torch {torch.__version__}; {rustc}; commit {commit}")
    print(f"steps: {args.warmup} warm-up + {args.steps} timed per run (median), {args.reps} interleaved repetitions "
          f"(median of the run medians); one process at a time\n")
    rows = []
    for threads in map(int, args.threads.split(",")):
        ours_gemm, torch_gemm = gemm_ceilings(threads)
        print(f"{threads} thread(s): 1024³ GEMM ceiling: ours {ours_gemm:.0f} GFLOP/s, torch fp32 "
              f"{torch_gemm['fp32']:.0f}, torch bf16 {torch_gemm['bf16']:.0f}", flush=True)
        ceiling = {"ours": ours_gemm, "pytorch-fp32": torch_gemm["fp32"], "pytorch-bf16": torch_gemm["bf16"]}
        for case in args.cases.split(","):
            # Repetitions interleave the implementations, so that load from other processes on a
            # shared machine falls on all of them alike; each is summarised by its median.
            reps = {}
            for rep in range(args.reps):
                mine, config, fpt, cfg = ours(case, threads, args.steps, args.warmup)
                runs = [mine, torch_run(config, threads, args.steps, args.warmup, False)]
                if not args.no_bf16:
                    runs.append(torch_run(config, threads, args.steps, args.warmup, True))
                for r in runs:
                    reps.setdefault(r["impl"], []).append(r)
                print(f"  {case:<9} rep {rep + 1}: " + ", ".join(f"{r['impl']} {r['ms_per_step']:.0f} ms/step"
                                                                   for r in runs), flush=True)
            results = [summarise(runs) for runs in reps.values()]
            m = cfg["model"]
            shape = (f"{m['arch']} D={m['d_model']} L={m['n_layers']} seq={cfg['seq_len']} batch={cfg['batch_size']}"
                     + (f" (m,n)=({m['vwn']['m']},{m['vwn']['n']})" if m["arch"] == "vwn" else "")
                     + (" +MTP" if m["mtp"]["enabled"] else ""))
            fp32 = results[1]
            for r in results:
                gflops = fpt * r["tokens_per_s"] / 1e9
                rows.append([case, shape, threads, r["impl"], r["tokens_per_s"], r["ms_per_step"], r["peak_rss_mib"],
                             gflops, gflops / ceiling[r["impl"]], gflops / (PEAK_PER_CORE * threads),
                             r["tokens_per_s"] / fp32["tokens_per_s"]])
                print(f"  {case:<9} {r['impl']:<13} {r['tokens_per_s']:8.0f} tok/s {r['ms_per_step']:9.1f} ms/step "
                      f"{r['peak_rss_mib']:7.0f} MiB {gflops:6.1f} GFLOP/s", flush=True)
    print()
    print("| case | config | threads | impl | tokens/s | ms/step | peak RSS MiB | GFLOP/s | of GEMM ceiling "
          "| of peak | vs PyTorch fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.0f} | {r[5]:.0f} | {r[6]:.0f} | {r[7]:.1f} | "
              f"{100 * r[8]:.0f}% | {100 * r[9]:.0f}% | {r[10]:.2f}× |")


if __name__ == "__main__":
    main()
