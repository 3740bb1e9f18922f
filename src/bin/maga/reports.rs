//! `maga mix` (the data-budget planner) and `maga analyze` (the collapse analysis).

use std::io::Write;
use std::path::PathBuf;

use data::maga::analyze::{analyze as compare, read_dump, AnomalyConfig};
use data::maga::mix::{parse_source, plan};
use vwn::cli::Args;

pub fn mix(args: &mut Args) -> Result<(), String> {
    let budget: f64 = args.take_parsed("budget")?.ok_or("mix needs --budget TOKENS")?;
    args.finish()?;
    let sources = args.positional.iter().map(|s| parse_source(s)).collect::<Result<Vec<_>, _>>()?;
    print!("{}", plan(&sources, budget)?);
    Ok(())
}

pub fn analyze(args: &mut Args) -> Result<(), String> {
    let real = args.take("real").ok_or("analyze needs --real FILE.jsonl (losses of the model trained on real data)")?;
    let synthetic = args.take("synthetic").ok_or("analyze needs --synthetic FILE.jsonl (losses of the other model)")?;
    let d = AnomalyConfig::default();
    let cfg = AnomalyConfig {
        k: args.take_parsed("k")?.unwrap_or(d.k),
        window: args.take_parsed("window")?.unwrap_or(d.window),
    };
    let out = args.take("out").map(PathBuf::from);
    args.finish()?;
    let load = |p: &str| read_dump(p.as_ref()).map_err(|e| e.to_string());
    let a = compare(&load(&real)?, &load(&synthetic)?, cfg)?;
    println!("{a}");
    if let Some(path) = out {
        let mut text = Vec::new();
        for d in &a.docs {
            let line = serde_json::json!({"doc": d.doc, "len": d.len, "mean_diff": d.mean_diff,
                "first_anomaly": d.first_anomaly, "normalized_position": d.normalized});
            writeln!(text, "{line}").expect("vec write");
        }
        data::fsutil::write_atomic(&path, &text).map_err(|e| e.to_string())?;
        eprintln!("per-document results → {}", path.display());
    }
    Ok(())
}
