//! The web demo as a person uses it: the page loads an int8 model, reranks a sample member's
//! pushed candidates (new titles the bundle lacks among them, pushed with their metadata), and
//! a click on a title reranks through the member session from two new tokens, and a surface
//! tab with a prompt set swaps it in without re-encoding the history; the contextual ranker's
//! search box, α slider and "more like this" rerank through the same session.
//!
//! Needs what `tests/browser.rs` needs (the wasm package, Chromium, the npm packages).

use burn::tensor::Device;
use encore::cli::{WEB_NEW_TITLES, web_bundle, write_web_assets};
use encore::ranking::{RankerFit, RankerShape, RankerTrainConfig, fit_ranker};
use encore::training::TrainConfig;
use encore_core::model::{NamedPromptSet, PromptForm, PromptSetConfig};
use encore_core::weights::{Quantization, load_model, requantize};
use encore_tests::{
    browser_prerequisites, run_browser_script, small_world, split, temp_dir, tiny_config, train_on,
    workspace_root,
};
use serde_json::Value;

/// Copies the directory tree `from` to `to` (the package holds the CPU-only build in `cpu/`).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn the_demo_page_reranks_clicks_from_the_session_cache() {
    let Some(pkg) = browser_prerequisites("web demo test") else {
        return;
    };
    let root = workspace_root();
    // The page as `web-demo/serve.sh` serves it: the checked-in files, pkg/ and assets/.
    let site = temp_dir("web-demo");
    for file in ["index.html", "app.js", "style.css"] {
        std::fs::copy(root.join("web-demo").join(file), site.join(file)).unwrap();
    }
    copy_dir(&pkg, &site.join("pkg"));
    let world = small_world();
    // A small trained model with its item content encoder, whose window holds the sample
    // members' histories (the page's behaviour does not depend on the weights' values),
    // stored as int8.
    let tiny = tiny_config(1);
    let cfg = TrainConfig {
        model: tiny.model.clone().with_max_len(128),
        ..tiny
    };
    let trained = train_on(&world, &cfg).unwrap().weights;
    // A prompt set for the kids tab (input form, 2 vectors: a switch to it encodes them and the
    // request token), none for home; the page falls back to no prompt there.
    let loaded = load_model(&trained, &Device::flex()).unwrap();
    let prompts = vec![NamedPromptSet {
        name: "kids".into(),
        prompt: PromptSetConfig::new(PromptForm::Input, cfg.model.d_model, cfg.model.n_layers)
            .with_length(2)
            .init(&Device::flex()),
    }];
    let with_prompts = loaded.to_bundle(&prompts, Quantization::F32);
    // A contextual ranker trained on the page's model (without the titles it pushes), for
    // the search box, "more like this" and the α slider.
    let reduced = web_bundle(&world.catalog, &with_prompts).unwrap();
    let (train_set, _) = split(&world);
    let fit = RankerFit {
        impressions: 600,
        candidates: 10,
        batch_impressions: 32,
        shape: RankerShape {
            d_embed: Some(8),
            d_hidden: Some(32),
            n_cross: Some(1),
            n_mlp: Some(1),
        },
        train: RankerTrainConfig {
            epochs: 1,
            learning_rate: 1e-3,
            alpha: None,
            seed: 3,
        },
    };
    let with_ranker = fit_ranker(&reduced, &world.catalog, &train_set, &fit).unwrap();
    let weights = requantize(&with_ranker, Quantization::Int8).unwrap();
    write_web_assets(
        &site.join("assets"),
        &world.catalog,
        &world.events,
        &weights,
    )
    .unwrap();

    // With WebGPU the page loads the full runtime; without it the CPU-only one.
    for webgpu in [true, false] {
        let mut args = vec!["--site", site.to_str().unwrap()];
        if !webgpu {
            args.push("--no-webgpu");
        }
        let out = run_browser_script("demo.mjs", &args);
        assert_eq!(out["navigatorGpu"], webgpu, "{out}");
        let field = |k: &str| out[k].as_str().unwrap_or_default().to_string();
        assert_eq!(
            field("status").contains("CPU-only runtime"),
            !webgpu,
            "the page loads the CPU-only package exactly when WebGPU is missing: {out}"
        );
        if !webgpu {
            assert!(field("status").starts_with("backend: cpu"), "{out}");
        }
        assert!(field("status").contains("int8 weights"), "{out}");
        assert!(field("status").starts_with("backend: "), "{out}");
        assert!(field("status").contains("prompt sets: kids"), "{out}");
        assert!(
            field("first").contains("tokens encoded") && field("first").contains("no prompt"),
            "{out}"
        );
        assert!(
            field("afterClick").contains("2 tokens encoded")
                && field("afterClick").contains("from the cache"),
            "a click appends one event: {out}"
        );
        assert!(
            field("afterSurface").contains("3 tokens encoded")
                && field("afterSurface").contains("prompt kids (input, 2 vectors)"),
            "a switch to the kids tab encodes its prompt and the request alone: {out}"
        );
        assert_eq!(
            out["reranked"], out["pushed"],
            "every pushed candidate is shown reranked"
        );
        assert!(out["pushed"].as_u64().unwrap() > 0);
        // New titles the bundle lacks arrive with their metadata and are reranked with the rest;
        // they are not offered for watching (the bundle cannot tokenize them in a history).
        assert!(
            field("status").contains(&format!(
                "{} titles in the bundle, {WEB_NEW_TITLES} new ones pushed with metadata",
                world.catalog.len() - WEB_NEW_TITLES
            )),
            "{out}"
        );
        let new_pushed = out["newPushed"].as_u64().unwrap();
        assert!(new_pushed >= 2, "{out}");
        assert_eq!(out["newReranked"].as_u64().unwrap(), new_pushed, "{out}");
        assert_eq!(out["newInCatalog"], 0, "{out}");
        // Watching a new title from the reranked list (still on the kids tab): one more
        // event, encoded from the cache, with the prompt's two tokens and the request.
        assert!(
            field("afterNewWatch").contains("4 tokens encoded"),
            "watching a pushed title appends one event: {out}"
        );
        let count = |k: &str| -> usize { field(k).split(' ').next().unwrap().parse().unwrap() };
        assert_eq!(count("historyAfterNew"), count("historyCount") + 1, "{out}");
        // The contextual ranker: a typed query reranks the titles the "server" found for it,
        // the α slider reranks them again, ≈ on a title opens its "more like this" page; each
        // call encodes the request token alone (the history stays cached; no prompt on home).
        assert!(
            field("status").contains("ranker tasks: search, home_row, more_like_this"),
            "{out}"
        );
        assert!(
            field("afterQuery").contains("ranker: search, α task default")
                && field("afterQuery").contains("1 token encoded"),
            "{out}"
        );
        assert!(out["queryResults"].as_u64().unwrap() > 0, "{out}");
        assert!(field("afterAlpha").contains("ranker: search, α 0"), "{out}");
        assert_ne!(
            out["scoresAtAlpha1"], out["scoresAtAlpha0"],
            "the α slider moves the scores: {out}"
        );
        assert!(
            field("afterMoreLikeThis").contains("ranker: more_like_this like "),
            "{out}"
        );
        // A search for a new title's name finds it: pushed with its metadata, ranked in context.
        assert!(field("afterNewSearch").contains("ranker: search"), "{out}");
        let new_title = field("newTitle");
        assert!(
            out["newInSearch"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t.as_str() == Some(new_title.as_str())),
            "{out}"
        );
        let errors: Vec<&Value> = out["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l.as_str().unwrap_or("").starts_with("[pageerror]"))
            .collect();
        assert!(errors.is_empty(), "page errors: {errors:?}");
    }
    std::fs::remove_dir_all(site).unwrap();
}
