//! SmolLM2-135M-Instruct (Q4_1 GGUF) against the reference generations of
//! shared/corpus/SOURCES.md, and the engine's batching and sampling on the real model.
//! The model comes from `scripts/fetch_model.sh`; these tests fail, naming that command,
//! when it is missing.

use std::path::Path;
use std::sync::OnceLock;

use data::llm::{ChatMessage, ChatRequest, FinishReason, Sampling, TextGenerator};
use model::llama::{smollm2_path, LlamaEngine};

fn engine() -> &'static LlamaEngine {
    static ENGINE: OnceLock<LlamaEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let path = smollm2_path(&root).unwrap_or_else(|e| panic!("{e}"));
        LlamaEngine::load(&path).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn ask(user: &str, sampling: Sampling) -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::user(user)], sampling }
}

const FRANCE: &str = "What is the capital of France?";
const PHOTOSYNTHESIS: &str = "Rewrite this sentence in simpler words: Photosynthesis is the process by which green \
                              plants use sunlight to synthesize nutrients from carbon dioxide and water.";

#[test]
fn greedy_generation_matches_the_reference() {
    let e = engine();
    let request = ask(FRANCE, Sampling::greedy(64));
    let prompt = e.prompt_ids(&request).unwrap();
    assert_eq!(prompt.len(), 37);
    let stop = e.stop_ids();
    let generated = e.model().generate(&[(&prompt, &request.sampling)], stop).remove(0);
    assert_eq!(generated.tokens, [504, 3575, 282, 4649, 314, 7042, 30]);
    assert_eq!(generated.finish, FinishReason::Stop);

    let responses = e.generate(&[request, ask(PHOTOSYNTHESIS, Sampling::greedy(64))]);
    let france = responses[0].as_ref().unwrap();
    assert_eq!(france.text, "The capital of France is Paris.");
    assert_eq!((france.prompt_tokens, france.completion_tokens, france.finish), (37, 7, FinishReason::Stop));
    let simpler = responses[1].as_ref().unwrap();
    assert_eq!(
        simpler.text,
        "Photosynthesis is a process that plants use sunlight to make food from carbon dioxide and water."
    );
    assert_eq!(simpler.finish, FinishReason::Stop);
}

#[test]
fn chat_prompt_uses_the_templates_default_system_line() {
    let e = engine();
    assert_eq!(
        e.chat_template().default_system(),
        Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    );
    let text = e.tokenizer().decode(&e.prompt_ids(&ask(FRANCE, Sampling::greedy(1))).unwrap()).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
    // A conversation's own system message replaces the default.
    let own = ChatRequest {
        messages: vec![ChatMessage::system("Be terse."), ChatMessage::user("Hi")],
        sampling: Sampling::greedy(1),
    };
    let text = e.tokenizer().decode(&e.prompt_ids(&own).unwrap()).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(e.model_id(), "SmolLM2-135M-Instruct.Q4_1");
}

#[test]
fn batched_requests_decode_like_single_ones_and_stop_on_their_own() {
    let e = engine();
    let sampled = |seed| Sampling { temperature: 0.8, top_k: 40, top_p: 0.95, max_tokens: 24, seed };
    let requests = vec![
        ask(FRANCE, Sampling::greedy(64)),
        ask("Write a short poem about the sea.", sampled(1)),
        ask(PHOTOSYNTHESIS, Sampling::greedy(5)),
        ask("Name three prime numbers.", sampled(2)),
    ];
    let together = e.generate(&requests);
    for (request, batched) in requests.iter().zip(&together) {
        let alone = e.generate(std::slice::from_ref(request)).remove(0);
        assert_eq!(batched.as_ref().unwrap(), &alone.unwrap());
    }
    let finish: Vec<FinishReason> = together.iter().map(|r| r.as_ref().unwrap().finish).collect();
    assert_eq!(finish[0], FinishReason::Stop);
    assert_eq!(finish[2], FinishReason::Length);
    assert_eq!(together[2].as_ref().unwrap().completion_tokens, 5);
}

#[test]
fn sampling_is_reproducible_with_a_seed() {
    let e = engine();
    let with_seed = |seed| {
        let s = Sampling { temperature: 1.0, top_k: 50, top_p: 0.9, max_tokens: 20, seed };
        e.generate(&[ask("Tell me a fact about cats.", s)]).remove(0).unwrap().text
    };
    let first = with_seed(7);
    assert_eq!(first, with_seed(7));
    let others: Vec<String> = (8..11).map(with_seed).collect();
    assert!(others.iter().any(|t| *t != first), "four seeds gave the same text: {first:?}");
}

#[test]
fn requests_that_cannot_run_fail_alone() {
    let e = engine();
    let too_long = ask(FRANCE, Sampling::greedy(9000));
    let bad_temperature = ask(FRANCE, Sampling { temperature: -1.0, ..Sampling::greedy(4) });
    let results = e.generate(&[too_long, ask(FRANCE, Sampling::greedy(64)), bad_temperature]);
    let err = results[0].as_ref().unwrap_err();
    assert!(!err.retryable && err.message.contains("context window of 8192"), "{err}");
    assert_eq!(results[1].as_ref().unwrap().text, "The capital of France is Paris.");
    assert!(results[2].as_ref().unwrap_err().message.contains("temperature"));
}
