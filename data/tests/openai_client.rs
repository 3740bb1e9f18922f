//! The HTTP client's failure handling against scripted servers on loopback: transient
//! failures are retried with backoff, 4xx are not, concurrency stays bounded, and timeouts and
//! refused connections are reported. (The happy path against `maga serve` and the real engine
//! is in the root package's tests/maga_http.rs.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use data::llm::{ChatMessage, ChatRequest, Sampling, TextGenerator};
use data::openai::{ClientConfig, OpenAiClient};
use tiny_http::{Response, Server};

const OK_BODY: &str = r#"{"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 3, "completion_tokens": 1}}"#;

/// Serves `reply(n)` for the n-th chat request (0-based) on `threads` threads, for at most
/// `limit` requests; returns the address and the request counter.
fn scripted(
    threads: usize,
    limit: usize,
    reply: impl Fn(usize) -> (u16, String, Duration) + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let server = Arc::new(Server::http("127.0.0.1:0").unwrap());
    let addr = format!("http://{}", server.server_addr().to_ip().unwrap());
    let (seen, in_flight, peak) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reply = Arc::new(reply);
    for _ in 0..threads {
        let (server, seen, in_flight, peak, reply) =
            (server.clone(), seen.clone(), in_flight.clone(), peak.clone(), reply.clone());
        std::thread::spawn(move || {
            while let Ok(Some(req)) = server.recv_timeout(Duration::from_secs(20)) {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                if n >= limit {
                    break;
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let (status, body, delay) = reply(n);
                std::thread::sleep(delay);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = req.respond(Response::from_string(body).with_status_code(status));
            }
        });
    }
    (addr, seen, peak)
}

fn client(url: &str, retries: usize, concurrency: usize, timeout: Duration) -> OpenAiClient {
    OpenAiClient::connect(ClientConfig {
        base_url: url.to_string(),
        model: Some("m".into()),
        concurrency,
        timeout,
        retries,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::user("hello")], sampling: Sampling::greedy(4) }
}

#[test]
fn transient_failures_are_retried_until_success() {
    let (url, seen, _) = scripted(1, 3, |n| match n {
        0 => (503, r#"{"error": {"message": "overloaded"}}"#.into(), Duration::ZERO),
        1 => (429, "slow down".into(), Duration::ZERO),
        _ => (200, OK_BODY.into(), Duration::ZERO),
    });
    let r = client(&url, 3, 1, Duration::from_secs(10)).generate(&[request()]);
    assert_eq!(r[0].as_ref().unwrap().text, "hi");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[test]
fn client_errors_are_not_retried_and_say_why() {
    let (url, seen, _) =
        scripted(1, 1, |_| (400, r#"{"error": {"message": "'max_tokens' must be positive"}}"#.into(), Duration::ZERO));
    let e = client(&url, 3, 1, Duration::from_secs(10)).generate(&[request()]).remove(0).unwrap_err();
    assert!(!e.retryable);
    assert!(e.message.contains("HTTP 400") && e.message.contains("'max_tokens' must be positive"), "{}", e.message);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[test]
fn retries_run_out_with_the_last_error() {
    let (url, seen, _) = scripted(1, 3, |_| (500, "boom".into(), Duration::ZERO));
    let e = client(&url, 2, 1, Duration::from_secs(10)).generate(&[request()]).remove(0).unwrap_err();
    assert!(
        e.retryable && e.message.contains("HTTP 500: boom") && e.message.contains("after 3 tries"),
        "{}",
        e.message
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[test]
fn timeouts_and_refused_connections_are_transient() {
    let (url, _, _) = scripted(1, 1, |_| (200, OK_BODY.into(), Duration::from_millis(1500)));
    let e = client(&url, 0, 1, Duration::from_millis(300)).generate(&[request()]).remove(0).unwrap_err();
    assert!(e.retryable, "{}", e.message);
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = client(&format!("http://127.0.0.1:{port}"), 1, 1, Duration::from_secs(5))
        .generate(&[request()])
        .remove(0)
        .unwrap_err();
    assert!(e.retryable && e.message.contains("after 2 tries"), "{}", e.message);
}

#[test]
fn concurrency_is_bounded_and_results_keep_their_order() {
    let (url, seen, peak) =
        scripted(8, 12, |n| (200, OK_BODY.replace("\"hi\"", &format!("\"r{n}\"")), Duration::from_millis(100)));
    let results = client(&url, 0, 3, Duration::from_secs(10)).generate(&vec![request(); 12]);
    assert_eq!(seen.load(Ordering::SeqCst), 12);
    assert!(results.iter().all(|r| r.is_ok()));
    assert!(peak.load(Ordering::SeqCst) <= 3, "peak {}", peak.load(Ordering::SeqCst));
    assert_eq!(peak.load(Ordering::SeqCst), 3, "three requests should overlap");
}
