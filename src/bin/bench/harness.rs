//! Shared machinery of the benchmark subcommands: interleaved median timing, one child
//! process per thread count, and a description of the machine.
//!
//! matrixmultiply reads `MATMUL_NUM_THREADS` and rayon reads `RAYON_NUM_THREADS` once per
//! process, so a subcommand measures each thread count in a child process of its own
//! (`bench <cmd> --threads N`, with both variables set in the child's environment). The
//! child prints one `RESULT` line per figure; the parent gathers them into one table.

use std::collections::BTreeMap;
use std::error::Error;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub type BenchResult<T = ()> = Result<T, Box<dyn Error>>;

/// The thread counts every table compares.
pub const THREAD_COUNTS: [usize; 2] = [1, 2];

/// Marks a figure on a child's stdout: `RESULT <case> <metric> <value>`, tab-separated.
const RESULT_TAG: &str = "RESULT";

const COMMON_USAGE: &str = "options:
  --reps N            timed repetitions per case, at least (default 11; short cases run more)
  --filter SUBSTRING  only the cases whose name contains SUBSTRING
  --quiet-wait SECS   longest wait for other processes to leave the CPUs idle (default 120)
  --malloc-reuse      run with glibc malloc keeping freed memory for reuse (no mmap per
                      large buffer, no trimming), to separate page-fault cost from kernels
  --rounds N          run the 1- and 2-thread children N times, alternating, and report
                      for every figure and ratio the median over the rounds (default 1)
  --threads N         measure on N threads in this process and print raw RESULT lines
                      (what the parent runs once per thread count and round)";

/// glibc tunables for `--malloc-reuse`: never mmap (so large buffers come from the heap and
/// return to it) and never trim the heap, so a freed buffer's pages stay mapped for the next.
const MALLOC_REUSE_TUNABLES: &str = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295";

/// Options shared by the subcommands.
#[derive(Clone, Debug)]
pub struct Options {
    /// `Some(n)`: measure in this process with `n` threads (child mode).
    pub threads: Option<usize>,
    /// Timed repetitions per case (at least; short cases run more, see [`medians`]).
    pub reps: usize,
    /// Only cases whose name contains this substring.
    pub filter: Option<String>,
    /// Longest wait for a quiet machine before each measurement.
    pub quiet_wait: Duration,
    /// Run the children with glibc's malloc told to keep and reuse freed memory.
    pub malloc_reuse: bool,
    /// Parent mode: how many times to run the children for every thread count.
    pub rounds: usize,
    /// The arguments to hand on to a child process.
    forward: Vec<String>,
}

impl Options {
    pub fn parse(args: &[String], usage: &str) -> BenchResult<Self> {
        let mut o = Options {
            threads: None,
            reps: 11,
            filter: None,
            quiet_wait: Duration::from_secs(120),
            malloc_reuse: false,
            rounds: 1,
            forward: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{a} needs a value\n{usage}"));
            match a.as_str() {
                "--threads" => o.threads = Some(value()?.parse()?),
                "--reps" => {
                    let v = value()?;
                    o.reps = v.parse()?;
                    o.forward.extend([a.clone(), v.clone()]);
                }
                "--filter" => {
                    let v = value()?;
                    o.filter = Some(v.clone());
                    o.forward.extend([a.clone(), v.clone()]);
                }
                "--quiet-wait" => {
                    let v = value()?;
                    o.quiet_wait = Duration::from_secs_f64(v.parse()?);
                    o.forward.extend([a.clone(), v.clone()]);
                }
                "--rounds" => o.rounds = value()?.parse()?,
                "--malloc-reuse" => {
                    o.malloc_reuse = true;
                    o.forward.push(a.clone());
                }
                "-h" | "--help" => return Err(format!("{usage}\n{COMMON_USAGE}").into()),
                _ => return Err(format!("unknown argument {a:?}\n{usage}\n{COMMON_USAGE}").into()),
            }
        }
        if o.reps == 0 || o.rounds == 0 || o.threads == Some(0) {
            return Err(format!("--reps, --rounds and --threads must be positive\n{usage}").into());
        }
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if o.threads.is_some() && o.malloc_reuse && !tunables.contains(MALLOC_REUSE_TUNABLES) {
            return Err(format!("--malloc-reuse with --threads needs GLIBC_TUNABLES={MALLOC_REUSE_TUNABLES}").into());
        }
        Ok(o)
    }

    pub fn selects(&self, case: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| case.contains(f.as_str()))
    }
}

/// Runs each closure `warm-up + reps` times, interleaved (repetition `r` runs every closure
/// once, so a disturbance from other processes hits all of them alike), and returns the
/// median seconds of each. Short cases get more repetitions, so that every case is timed
/// over at least [`MIN_CASE_SECONDS`].
///
/// The machine is shared: before timing it waits (up to `--quiet-wait`) until other
/// processes leave the CPUs nearly idle, and it repeats the timing (up to [`ATTEMPTS`]
/// times) when other processes took more than [`BUSY_LIMIT`] of the CPUs meanwhile. The
/// second value returned is that share in the attempt kept.
pub fn medians(opts: &Options, fs: &mut [&mut dyn FnMut()]) -> (Vec<f64>, f64) {
    let mut best: Option<(Vec<f64>, f64)> = None;
    for _ in 0..ATTEMPTS {
        wait_for_quiet(opts.quiet_wait);
        let before = CpuSample::now();
        let t = timed_medians(opts.reps, fs);
        let busy = before.and_then(|b| Some(CpuSample::now()?.others_busy_since(&b))).unwrap_or(0.0);
        if best.as_ref().is_none_or(|(_, b)| busy < *b) {
            best = Some((t, busy));
        }
        if busy <= BUSY_LIMIT {
            break;
        }
        eprintln!("    other processes took {:.0}% of the CPUs; measuring again", 100.0 * busy);
    }
    best.expect("ATTEMPTS > 0")
}

/// Share of all CPUs that other processes may use during a measurement before it is repeated.
const BUSY_LIMIT: f64 = 0.05;
const ATTEMPTS: usize = 4;
/// Shortest total time over which a case is timed.
const MIN_CASE_SECONDS: f64 = 1.0;

fn timed_medians(reps: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let mut warmup = Duration::ZERO;
    for f in fs.iter_mut() {
        f();
        let t = Instant::now();
        f();
        warmup += t.elapsed();
    }
    let per_rep = warmup.as_secs_f64().max(1e-9);
    let reps = reps.max((MIN_CASE_SECONDS / per_rep).ceil() as usize).min(2001);
    let mut times = vec![Vec::with_capacity(reps); fs.len()];
    for _ in 0..reps {
        for (f, ts) in fs.iter_mut().zip(&mut times) {
            let t = Instant::now();
            f();
            ts.push(t.elapsed().as_secs_f64());
        }
    }
    times.into_iter().map(median).collect()
}

/// Sleeps until other processes use less than [`BUSY_LIMIT`] of the CPUs over 0.3 s.
fn wait_for_quiet(max_wait: Duration) {
    let start = Instant::now();
    while start.elapsed() < max_wait {
        let Some(before) = CpuSample::now() else { return };
        std::thread::sleep(Duration::from_millis(300));
        match CpuSample::now() {
            Some(after) if after.others_busy_since(&before) > BUSY_LIMIT => continue,
            _ => return,
        }
    }
    eprintln!("    the machine stayed busy for {max_wait:?}; measuring anyway");
}

/// CPU time counters (clock ticks) of the whole machine and of this process (Linux).
struct CpuSample {
    busy: u64,
    total: u64,
    own: u64,
}

impl CpuSample {
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let t: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
        // user nice system idle iowait irq softirq steal …
        let busy = t.first()? + t.get(1)? + t.get(2)? + t.get(5)? + t.get(6)? + t.get(7)?;
        let total = busy + t.get(3)? + t.get(4)?;
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let f: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
        let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(CpuSample { busy, total, own })
    }

    /// Share of all CPUs that other processes kept busy since `earlier`.
    fn others_busy_since(&self, earlier: &CpuSample) -> f64 {
        let total = self.total.saturating_sub(earlier.total).max(1);
        let others = self.busy.saturating_sub(earlier.busy).saturating_sub(self.own.saturating_sub(earlier.own));
        others as f64 / total as f64
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Keeps a computed value alive so the optimiser cannot drop the work.
pub fn consume<T>(x: T) {
    drop(black_box(x));
}

const BUSY_METRIC: &str = "others-busy";

/// Prints the figures of one case for the parent (child mode): `(metric, value)` pairs,
/// and the share of the CPUs other processes took meanwhile (see [`medians`]).
pub fn emit_case(case: &str, figures: &[(&str, f64)], others_busy: f64) {
    for (metric, value) in figures {
        emit(case, metric, *value);
    }
    emit(case, BUSY_METRIC, others_busy);
}

/// Prints one figure for the parent (child mode).
fn emit(case: &str, metric: &str, value: f64) {
    println!("{RESULT_TAG}\t{case}\t{metric}\t{value}");
}

/// Figures gathered from the children, by round: `(round, threads, case, metric) → value`,
/// and the cases in the order the children reported them.
#[derive(Default)]
pub struct Results {
    values: BTreeMap<(usize, usize, String, String), f64>,
    rounds: usize,
    pub cases: Vec<String>,
}

/// The figures of one round: one child process per thread count, run one after the other.
pub struct Round<'a> {
    results: &'a Results,
    round: usize,
}

impl Round<'_> {
    pub fn get(&self, threads: usize, case: &str, metric: &str) -> Option<f64> {
        self.results.values.get(&(self.round, threads, case.to_string(), metric.to_string())).copied()
    }
}

impl Results {
    /// The median over rounds of `f(round)`. Ratios computed inside `f` compare figures
    /// measured in the same process (or in the same round, for thread counts).
    pub fn over_rounds(&self, f: impl Fn(&Round) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = (0..self.rounds).filter_map(|round| f(&Round { results: self, round })).collect();
        (!v.is_empty()).then(|| median(v))
    }

    /// The median over rounds of one figure.
    pub fn get(&self, threads: usize, case: &str, metric: &str) -> Option<f64> {
        self.over_rounds(|r| r.get(threads, case, metric))
    }

    /// The median over rounds of `numerator / denominator`, both measured in one process.
    pub fn ratio(&self, threads: usize, case: &str, numerator: &str, denominator: &str) -> Option<f64> {
        self.over_rounds(|r| Some(r.get(threads, case, numerator)? / r.get(threads, case, denominator)?))
    }

    /// The median over rounds of `metric` on the last thread count over the first.
    pub fn speedup(&self, case: &str, metric: &str) -> Option<f64> {
        let (first, last) = (THREAD_COUNTS[0], THREAD_COUNTS[THREAD_COUNTS.len() - 1]);
        self.over_rounds(|r| Some(r.get(last, case, metric)? / r.get(first, case, metric)?))
    }

    /// The case name, marked when other processes disturbed one of its measurements.
    pub fn label(&self, case: &str) -> String {
        let disturbed = THREAD_COUNTS.iter().any(|&t| self.get(t, case, BUSY_METRIC).is_some_and(|b| b > BUSY_LIMIT));
        if disturbed {
            format!("{case} (*)")
        } else {
            case.to_string()
        }
    }

    /// Footnote for [`Results::label`]'s mark, if any case carries it.
    pub fn footnote(&self) -> Option<String> {
        self.cases.iter().any(|c| self.label(c) != *c).then(|| {
            format!(
                "(*) other processes took more than {:.0}% of the CPUs during every attempt (median over rounds)",
                100.0 * BUSY_LIMIT
            )
        })
    }

    /// One line on how the figures were reduced.
    pub fn describe(&self) -> String {
        match self.rounds {
            1 => "one round: one child process per thread count".to_string(),
            n => {
                format!("median over {n} rounds (one child process per thread count each); ratios taken within a round")
            }
        }
    }
}

/// Parent mode: runs `bench <subcommand> --threads N` for every entry of [`THREAD_COUNTS`],
/// `--rounds` times, and collects their figures. Children report progress on stderr, which
/// passes through.
pub fn run_children(subcommand: &str, opts: &Options) -> BenchResult<Results> {
    let exe = std::env::current_exe()?;
    let mut results = Results { rounds: opts.rounds, ..Results::default() };
    for round in 0..opts.rounds {
        for threads in THREAD_COUNTS {
            eprintln!("[{subcommand}] round {}/{}: {threads} thread(s)…", round + 1, opts.rounds);
            let mut child = Command::new(&exe)
                .arg(subcommand)
                .args(["--threads", &threads.to_string()])
                .args(&opts.forward)
                .envs(thread_env(threads))
                .envs(opts.malloc_reuse.then(|| ("GLIBC_TUNABLES", malloc_tunables())))
                .stdout(Stdio::piped())
                .spawn()?;
            let stdout = child.stdout.take().ok_or("no child stdout")?;
            for line in BufReader::new(stdout).lines() {
                let line = line?;
                let fields: Vec<&str> = line.split('\t').collect();
                match fields.as_slice() {
                    [RESULT_TAG, case, metric, value] => {
                        if !results.cases.iter().any(|c| c == case) {
                            results.cases.push(case.to_string());
                        }
                        let key = (round, threads, case.to_string(), metric.to_string());
                        results.values.insert(key, value.parse()?);
                    }
                    _ => println!("{line}"),
                }
            }
            let status = child.wait()?;
            if !status.success() {
                return Err(format!("`bench {subcommand} --threads {threads}` failed: {status}").into());
            }
        }
    }
    Ok(results)
}

/// `GLIBC_TUNABLES` with [`MALLOC_REUSE_TUNABLES`] added to any the user set.
fn malloc_tunables() -> String {
    match std::env::var("GLIBC_TUNABLES") {
        Ok(t) if !t.is_empty() => format!("{t}:{MALLOC_REUSE_TUNABLES}"),
        _ => MALLOC_REUSE_TUNABLES.to_string(),
    }
}

fn thread_env(threads: usize) -> [(&'static str, String); 2] {
    [("MATMUL_NUM_THREADS", threads.to_string()), ("RAYON_NUM_THREADS", threads.to_string())]
}

/// Child mode: makes sure matrixmultiply and rayon will use `threads` threads. Both read
/// their variable lazily, on first use, which has not happened yet when a subcommand
/// starts, so setting the variables here works even when `--threads` was typed by hand.
pub fn pin_threads(threads: usize) -> BenchResult {
    for (var, value) in thread_env(threads) {
        if std::env::var(var).ok().as_deref() != Some(value.as_str()) {
            // Only the main thread exists at this point.
            std::env::set_var(var, value);
        }
    }
    if rayon::current_num_threads() != threads {
        return Err(format!("rayon runs {} threads, wanted {threads}", rayon::current_num_threads()).into());
    }
    Ok(())
}

/// CPU model, date, GEMM kernel and allocator mode, printed above every table.
pub fn print_machine(opts: &Options) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // `key : value` lines of the first processor.
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim()))
    };
    let cpu = format!(
        "{} (family {}, model {})",
        field("model name").unwrap_or("unknown CPU"),
        field("cpu family").unwrap_or("?"),
        field("model").unwrap_or("?")
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("date: {} (UTC)", today());
    println!("cpu:  {cpu}, {cores} logical CPUs");
    println!("sgemm kernel (matrixmultiply runtime dispatch): {}", sgemm_kernel());
    if opts.malloc_reuse {
        println!("malloc: glibc, freed memory kept for reuse (--malloc-reuse: {MALLOC_REUSE_TUNABLES})");
    } else {
        println!(
            "malloc: glibc defaults (buffers ≥ 32 MiB are fresh mmaps: their pages are faulted in on first write)"
        );
    }
    println!();
}

/// The kernel matrixmultiply 0.3.11 selects at run time: its `detect` tries AVX-512F first
/// (compiled in with its default `avx512` feature on rustc ≥ 1.89), then FMA+AVX2, then AVX.
fn sgemm_kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512F, 16×16 microkernel";
        }
        if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2") {
            return "FMA+AVX2, 8×8 microkernel";
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return "AVX, 8×8 microkernel";
        }
    }
    "portable fallback"
}

/// Today's date as `YYYY-MM-DD` (proleptic Gregorian, from the Unix day number).
fn today() -> String {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `n` uniform values in `[-1, 1)` from a fixed seed.
pub fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = tensor::Rng::seed(seed);
    (0..n).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect()
}

/// Formats an optional figure right-aligned in `width` columns.
pub fn cell(x: Option<f64>, width: usize, decimals: usize) -> String {
    match x {
        Some(x) => format!("{x:>width$.decimals$}"),
        None => format!("{:>width$}", "–"),
    }
}
