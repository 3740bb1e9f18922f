//! Corpus readers on files: text folders, JSONL (plain and zstd), Parquet
//! in the MAGACorpus schema; bad records are counted, not dropped silently.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields};
use data::readers::{MagaText, Source};
use parquet::arrow::ArrowWriter;

#[test]
fn text_folders_read_in_order_and_count_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("b.txt"), "second").unwrap();
    fs::write(root.join("a.txt"), "first").unwrap();
    fs::write(root.join("sub/c.md"), "third").unwrap();
    fs::write(root.join("empty.txt"), "").unwrap();
    fs::write(root.join("latin1.txt"), b"caf\xe9").unwrap();
    fs::write(root.join(".hidden"), "ignored").unwrap();
    let (docs, report) = Source::Text { path: root.into() }.read_all().unwrap();
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["a.txt", "b.txt", "sub/c.md"]);
    assert_eq!((report.files, report.documents, report.bytes), (5, 3, 16));
    assert_eq!(report.skipped["empty text"], 1);
    assert_eq!(report.skipped["invalid UTF-8"], 1);
    assert!(report.to_string().contains("latin1.txt: invalid UTF-8 at byte 3"), "{report}");

    let missing = Source::Text { path: root.join("nope") }.read_all().unwrap_err().to_string();
    assert!(missing.contains("nope"), "{missing}");
}

#[test]
fn jsonl_plain_and_zstd_with_custom_fields() {
    let dir = tempfile::tempdir().unwrap();
    let lines = "{\"key\": \"k1\", \"body\": \"hello\"}\n{\"key\": \"k2\", \"body\": \"world\"}\n{\"body\": 3}\n";
    fs::write(dir.path().join("a.jsonl"), lines).unwrap();
    fs::write(dir.path().join("b.jsonl.zst"), zstd::encode_all(lines.as_bytes(), 3).unwrap()).unwrap();
    fs::write(dir.path().join("notes.txt"), "not a corpus file").unwrap();
    let source = Source::Jsonl { path: dir.path().into(), text_field: "body".into(), id_field: "key".into() };
    let (docs, report) = source.read_all().unwrap();
    assert_eq!(docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>(), ["hello", "world", "hello", "world"]);
    assert_eq!(docs[0].id, "k1");
    assert_eq!(report.files, 2);
    assert_eq!(report.skipped["missing text"], 2);
    assert!(report.to_string().contains("b.jsonl.zst:3: missing text"), "{report}");
}

const META_FIELDS: [&str; 8] = ["chunk_id", "docid", "meta_extra", "source", "split", "genre", "audience", "raw_text"];

/// A MAGACorpus-shaped row: (chunk_id, raw_text, content_split).
type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

fn write_maga(path: &Path, rows: &[Row]) {
    let column = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let meta_columns: Vec<ArrayRef> = META_FIELDS
        .iter()
        .map(|&name| match name {
            "chunk_id" => column(&|r| Some(r.0.to_string())),
            "raw_text" => column(&|r| r.1.map(str::to_string)),
            "docid" => column(&|r| Some(r.0.split(':').next().unwrap().to_string())),
            other => column(&|_| Some(format!("{other}-value"))),
        })
        .collect();
    let fields: Fields = META_FIELDS.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect();
    let meta = StructArray::new(fields, meta_columns, None);
    let content = column(&|r| r.2.map(str::to_string));
    let batch = RecordBatch::try_from_iter([("meta", Arc::new(meta) as ArrayRef), ("content_split", content)]).unwrap();
    let mut w = ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_in_the_maga_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("maga.parquet");
    write_maga(
        &path,
        &[
            ("d1:0", Some("raw one"), Some("reformulated one")),
            ("d1:1", Some("raw two"), None),
            ("d2:0", None, Some("reformulated three")),
            ("d3:0", Some(""), Some("")),
        ],
    );
    let (docs, report) = Source::maga(&path, MagaText::Reformulated).read_all().unwrap();
    assert_eq!(
        docs.iter().map(|d| (d.id.as_str(), d.text.as_str())).collect::<Vec<_>>(),
        [("d1:0", "reformulated one"), ("d2:0", "reformulated three")]
    );
    assert_eq!((report.skipped["missing text"], report.skipped["empty text"]), (1, 1));
    assert!(report.to_string().contains("maga.parquet:2: missing text"), "{report}");

    let (raw, _) = Source::maga(dir.path(), MagaText::Raw).read_all().unwrap();
    assert_eq!(raw.iter().map(|d| d.text.as_str()).collect::<Vec<_>>(), ["raw one", "raw two"]);

    let no_column = Source::Parquet { path: path.clone(), text_column: "meta.nope".into(), id_column: None };
    assert!(no_column.read_all().unwrap_err().to_string().contains("no column \"meta.nope\""));
    fs::write(&path, b"PAR1 this is not parquet").unwrap();
    assert!(Source::maga(&path, MagaText::Raw).read_all().unwrap_err().to_string().contains("maga.parquet"));
}
