//! The stage driver: disjoint shards, atomic batches, resume after a failure mid-run, rejects
//! for malformed lines, refusal to resume with other settings.

use std::collections::BTreeSet;
use std::path::Path;

use data::maga::schema::Reject;
use data::maga::stage::{
    read_all_rows, read_rows, require_finished, run_stage, stage_files, Outcome, Shard, StageConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    docid: String,
    n: u64,
}

fn write_input(dir: &Path) -> std::path::PathBuf {
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&serde_json::to_string(&Row { docid: format!("doc{i}"), n: i }).unwrap());
        text.push('\n');
        if i % 17 == 3 {
            text.push_str("{not json\n");
        }
    }
    let path = dir.join("input.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

fn cfg(out: &Path, shard: Shard, batch_size: usize) -> StageConfig {
    StageConfig { stage: "test", out_dir: out.to_path_buf(), shard, batch_size, settings: json!({"k": 1}) }
}

/// Doubles `n`; odd numbers are rejected; fails on the batch containing `fail_on`.
fn run(input: &Path, c: &StageConfig, fail_on: Option<u64>) -> data::Result<data::maga::stage::Counts> {
    let items = read_rows::<Row>("test", vec![input.to_path_buf()], |r| (r.n.to_string(), r.docid.clone()));
    run_stage(
        c,
        items,
        |batch| {
            if batch.iter().any(|(_, r)| Some(r.n) == fail_on) {
                return Err(data::Error::Stage("injected failure".into()));
            }
            let mut out = Outcome::default();
            for (id, r) in batch {
                if r.n % 2 == 1 {
                    out.rejects.push(Reject {
                        stage: "test".into(),
                        reason: "odd".into(),
                        id,
                        detail: String::new(),
                        record: String::new(),
                    });
                } else {
                    out.outputs.push(Row { n: 2 * r.n, ..r });
                }
            }
            Ok(out)
        },
        &mut |_| {},
    )
}

fn ids(dir: &Path) -> (Vec<u64>, Vec<String>) {
    let rows: Vec<Row> = read_all_rows(dir, "part").unwrap();
    let rejects: Vec<Reject> = read_all_rows(dir, "rejects").unwrap();
    (
        rows.into_iter().map(|r| r.n / 2).collect(),
        rejects.into_iter().map(|r| format!("{}:{}", r.reason, r.id)).collect(),
    )
}

#[test]
fn resumes_after_a_failure_without_losing_or_repeating_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path());
    let out = dir.path().join("out");
    let c = cfg(&out, Shard::ALL, 4);
    let e = run(&input, &c, Some(30)).unwrap_err();
    assert!(e.to_string().contains("injected failure"));
    assert!(require_finished(&out, Some(Shard::ALL)).unwrap_err().to_string().contains("has not finished"));
    let committed = stage_files(&out, "part", None).unwrap().len();
    assert!(committed > 3, "{committed} batches committed before the failure");
    let counts = run(&input, &c, None).unwrap();
    assert_eq!(counts.resumed_batches as usize, committed);
    require_finished(&out, Some(Shard::ALL)).unwrap();
    let (rows, rejects) = ids(&out);
    let evens: Vec<u64> = (0..50).filter(|n| n % 2 == 0).collect();
    assert_eq!(rows, evens);
    let odd = rejects.iter().filter(|r| r.starts_with("odd:")).count();
    let malformed = rejects.iter().filter(|r| r.starts_with("malformed_input:")).count();
    assert_eq!((odd, malformed, rejects.len()), (25, 3, 28));
    assert!(rejects.iter().any(|r| r.ends_with("input.jsonl:5")), "{rejects:?}");
    // No temporary files are left behind.
    assert!(std::fs::read_dir(&out).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
}

#[test]
fn shards_are_disjoint_and_cover_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path());
    let out = dir.path().join("out");
    let mut all = Vec::new();
    for index in 0..3 {
        let shard = Shard { index, count: 3 };
        run(&input, &cfg(&out, shard, 5), None).unwrap();
        require_finished(&out, Some(shard)).unwrap();
    }
    require_finished(&out, None).unwrap();
    for index in 0..3 {
        let files = stage_files(&out, "part", Some(Shard { index, count: 3 })).unwrap();
        assert!(!files.is_empty());
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            all.extend(text.lines().map(|l| serde_json::from_str::<Row>(l).unwrap().n / 2));
        }
    }
    all.sort();
    assert_eq!(all, (0..50).filter(|n| n % 2 == 0).collect::<Vec<_>>());
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len());
}

#[test]
fn refuses_to_resume_with_other_settings_or_bad_shards() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path());
    let out = dir.path().join("out");
    run(&input, &cfg(&out, Shard::ALL, 4), None).unwrap();
    let e = run(&input, &cfg(&out, Shard::ALL, 5), None).unwrap_err().to_string();
    assert!(e.contains("other settings") && e.contains("manifest-s0000of0001.json"), "{e}");
    assert_eq!("2/8".parse::<Shard>().unwrap(), Shard { index: 2, count: 8 });
    for bad in ["8/8", "1", "a/2", "0/0"] {
        assert!(bad.parse::<Shard>().unwrap_err().contains("expected i/N"), "{bad}");
    }
}
