//! A tiny random llama written as a GGUF file in memory, with every supported tensor
//! type, for tests that must not depend on the downloaded model.

use data::gguf::{write, GgufValue, TensorData};
use tensor::Rng;

pub const VOCAB: usize = 64;

/// The GGUF bytes, with `edit` applied to the tensor list before writing.
pub fn tiny_llama_with(edit: impl FnOnce(&mut Vec<TensorData>)) -> Vec<u8> {
    let (d, ff, kv, layers) = (64u64, 96u64, 32u64, 2);
    let meta = |k: &str, v: GgufValue| (k.to_string(), v);
    let metadata = vec![
        meta("general.architecture", GgufValue::String("llama".into())),
        meta("llama.block_count", GgufValue::U32(layers)),
        meta("llama.context_length", GgufValue::U32(64)),
        meta("llama.embedding_length", GgufValue::U32(d as u32)),
        meta("llama.feed_forward_length", GgufValue::U32(ff as u32)),
        meta("llama.attention.head_count", GgufValue::U32(4)),
        meta("llama.attention.head_count_kv", GgufValue::U32(2)),
        meta("llama.rope.freq_base", GgufValue::F32(10_000.0)),
        meta("llama.attention.layer_norm_rms_epsilon", GgufValue::F32(1e-5)),
        meta("llama.vocab_size", GgufValue::U32(VOCAB as u32)),
    ];
    let mut rng = Rng::seed(5);
    let mut tensor = |name: String, dims: Vec<u64>, ggml_type: u32| {
        let n: u64 = dims.iter().product();
        let bytes = random_bytes(ggml_type, n as usize, &mut rng);
        TensorData { name, dims, ggml_type, bytes }
    };
    let (f32_, f16, q4_1, q8_0) = (0, 1, 3, 8);
    let mut tensors = vec![tensor("token_embd.weight".into(), vec![d, VOCAB as u64], q8_0)];
    for i in 0..layers {
        let name = |s: &str| format!("blk.{i}.{s}.weight");
        tensors.push(tensor(name("attn_norm"), vec![d], f32_));
        tensors.push(tensor(name("attn_q"), vec![d, d], q4_1));
        tensors.push(tensor(name("attn_k"), vec![d, kv], q4_1));
        tensors.push(tensor(name("attn_v"), vec![d, kv], q4_1));
        tensors.push(tensor(name("attn_output"), vec![d, d], q8_0));
        tensors.push(tensor(name("ffn_norm"), vec![d], f32_));
        tensors.push(tensor(name("ffn_gate"), vec![d, ff], f16));
        tensors.push(tensor(name("ffn_up"), vec![d, ff], f16));
        tensors.push(tensor(name("ffn_down"), vec![ff, d], f32_));
    }
    tensors.push(tensor("output_norm.weight".into(), vec![d], f32_));
    edit(&mut tensors);
    write(&metadata, &tensors)
}

pub fn tiny_llama() -> Vec<u8> {
    tiny_llama_with(|_| {})
}

/// Random data of `n` elements of a type: values of order 0.1 to 1 so activations stay
/// in range through the layers.
fn random_bytes(ggml_type: u32, n: usize, rng: &mut Rng) -> Vec<u8> {
    let mut byte = || rng.below(256) as u8;
    match ggml_type {
        0 => (0..n).flat_map(|_| (0.5 + 0.5 * (byte() as f32 / 255.0)).to_le_bytes()).collect(),
        // f16 with exponent 11..=13 (0.0156..0.125), random sign and mantissa.
        1 => (0..n)
            .flat_map(|_| {
                let bits = u16::from(byte() & 0x80) << 8 | (11 + u16::from(byte() % 3)) << 10 | u16::from(byte()) << 2;
                bits.to_le_bytes()
            })
            .collect(),
        3 => (0..n / 32)
            .flat_map(|_| {
                // d = 1/64, m = -1/8: weights in [-0.125, 0.109].
                let mut b = vec![0x00, 0x24, 0x00, 0xb0];
                b.extend((0..16).map(|_| byte()));
                b
            })
            .collect(),
        8 => (0..n / 32)
            .flat_map(|_| {
                let mut b = vec![0x00, 0x20]; // d = 1/128
                b.extend((0..32).map(|_| byte()));
                b
            })
            .collect(),
        other => panic!("no random data for type {other}"),
    }
}
