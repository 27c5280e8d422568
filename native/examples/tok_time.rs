use encore_core::weights::{Quantization, save_model};
use encore_core::{FoundationModelConfig, RerankRequest, Reranker, Surface};
use std::time::Instant;
fn main() {
    let config = FoundationModelConfig::new(3883)
        .with_d_model(50)
        .with_n_heads(1)
        .with_d_ff(50)
        .with_max_len(256)
        .with_dropout(0.0);
    let model = config.init(&burn::tensor::Device::flex());
    let ids: Vec<u32> = (1..=3883).collect();
    let bytes = save_model(&model, &config, &ids, Quantization::F32);
    let r = Reranker::from_bytes(&bytes, &burn::tensor::Device::flex()).unwrap();
    let events = encore::backend::synthetic_history(&ids, 201);
    let req = RerankRequest::on(Surface::Home);
    let cands: Vec<u32> = ids[..100].to_vec();
    let mut s = encore_core::MemberSession::new(events[..199].to_vec()).unwrap();
    encore::backend::run_inline(|| r.rerank_session(&mut s, &cands, &req).unwrap());
    let n: usize = std::env::var("N")
        .map(|v| v.parse().unwrap())
        .unwrap_or(1000);
    let mut copies: Vec<_> = (0..n)
        .map(|_| {
            let mut c = s.clone();
            c.append(events[199].clone()).unwrap();
            c
        })
        .collect();
    let t = Instant::now();
    encore::backend::run_inline(|| {
        for mut c in copies.drain(..) {
            r.rerank_session(&mut c, &cands, &req).unwrap();
        }
    });
    println!(
        "append rerank: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
