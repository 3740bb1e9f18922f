"""Reference timings with Hugging Face `tokenizers`, run by the Rust bench.

Reads documents (JSONL, a "text" field), then
  - trains a byte-level BPE of --vocab ids (GPT-2 pre-tokenizer, all 256
    bytes in the alphabet, <|endoftext|> special), and
  - encodes all documents with `encode_batch` using --tokenizer (the
    tokenizer.json our Rust trainer wrote, so both sides encode with the
    same vocabulary),
each --reps times. The thread count comes from RAYON_NUM_THREADS, which
`tokenizers` reads. Prints one JSON line: median seconds, MB/s and a
checksum of the ids so the caller can check both sides agree.
"""

import argparse
import json
import statistics
import time

from tokenizers import Tokenizer, models, pre_tokenizers, trainers


def train(docs, vocab):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer)
    return tok


def checksum(encodings):
    """Token count and a polynomial hash of all ids, in order."""
    h, n = 0, 0
    for e in encodings:
        for i in e.ids:
            h = (h * 1000003 + i) % (2**61 - 1)
            n += 1
    return n, h


def median_time(f, reps):
    times = []
    result = None
    for _ in range(reps):
        t = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with open(args.docs, encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f]
    megabytes = sum(len(d.encode("utf-8")) for d in docs) / 1e6

    train_s, trained = median_time(lambda: train(docs, args.vocab), args.reps)
    ours = Tokenizer.from_file(args.tokenizer)
    encode_s, encodings = median_time(lambda: ours.encode_batch(docs, add_special_tokens=False), args.reps)
    tokens, ids_hash = checksum(encodings)
    # Compression of HF's own vocabulary, to compare with ours (not timed).
    trained_tokens = sum(len(e.ids) for e in trained.encode_batch(docs, add_special_tokens=False))
    print(json.dumps({
        "train_s": train_s,
        "trained_vocab": trained.get_vocab_size(),
        "trained_tokens": trained_tokens,
        "encode_s": encode_s,
        "encode_mb_s": megabytes / encode_s,
        "tokens": tokens,
        "ids_hash": ids_hash,
    }))


if __name__ == "__main__":
    main()
