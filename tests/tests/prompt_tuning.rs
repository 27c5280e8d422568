//! Prompt tuning trains the prompt alone: the foundation model's weights are byte-identical
//! before and after, the loss falls, and the task's examples are its targets only (the
//! command line's `encore prompt-tune` is tested in `native/tests/prompt_tune.rs`).

use burn::tensor::Device;
use encore::prompting::{PromptTask, PromptTuneConfig, examples, tune};
use encore_core::Surface;
use encore_core::model::PromptForm;
use encore_core::tokenizer::TokenField;
use encore_core::weights::{Quantization, load_model, save_model};
use encore_tests::{small_world, split, tiny_weight_file};

#[test]
fn tuning_moves_the_prompt_and_nothing_else() {
    let world = small_world();
    let bytes = tiny_weight_file(&world, 2);
    let device = Device::flex().autodiff();
    let loaded = load_model(&bytes, &device).unwrap();
    let (train, _) = split(&world);
    let task = PromptTask::parse("surface=search").unwrap();
    let tokenizer = loaded.config.tokenizer();
    let ex = examples(&train, &world.catalog, &tokenizer, &task).unwrap();
    assert!(ex.len() > 10, "{} windows", ex.len());
    // Every example position is a search target, and every search target is an example position.
    let mut searched = 0;
    for e in &ex {
        for (i, t) in e.window.tokens.iter().enumerate() {
            let search = t.get(TokenField::Surface) == Surface::Search.index() as u32;
            assert_eq!(e.positions.contains(&i), search && t.target.is_some());
            searched += usize::from(search);
        }
    }
    assert!(searched > 20);
    let before = save_model(
        &loaded.model,
        &loaded.config,
        loaded.items.ids(),
        Quantization::F32,
    );
    for form in PromptForm::ALL {
        let cfg = PromptTuneConfig {
            form,
            length: 2,
            epochs: 3,
            learning_rate: 0.05,
            ..PromptTuneConfig::default()
        };
        let mut seen = Vec::new();
        let tuned = tune(&loaded.model, &ex, &cfg, &device, |e| seen.push(e.loss)).unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(tuned.epochs.len(), 3);
        assert!(
            tuned.epochs[2].loss < tuned.epochs[0].loss,
            "{form:?}: loss {:?}",
            seen
        );
        assert_eq!(tuned.prompt.form(), form);
        assert_eq!(tuned.prompt.length(), 2);
        let after = save_model(
            &loaded.model,
            &loaded.config,
            loaded.items.ids(),
            Quantization::F32,
        );
        assert!(before == after, "{form:?}: the foundation model changed");
    }
    // Refused: a task without targets, a prompt of 17 vectors.
    let none = tune(
        &loaded.model,
        &[],
        &PromptTuneConfig::default(),
        &device,
        |_| {},
    );
    assert!(
        none.unwrap_err()
            .to_string()
            .contains("no training targets")
    );
    let long = PromptTuneConfig {
        length: 17,
        ..PromptTuneConfig::default()
    };
    let err = tune(&loaded.model, &ex, &long, &device, |_| {}).unwrap_err();
    assert!(err.to_string().contains("1 to 16 vectors, not 17"), "{err}");
}
