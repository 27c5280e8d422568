//! Evaluation looks every index up by item id in the order it applies to: a model whose item
//! rows are ordered differently from the catalog ranks each held-out case exactly the same.

use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData};
use encore::evaluation::{EvalProtocol, ranks};
use encore_core::Reranker;
use encore_core::data::catalog::ItemVocabulary;
use encore_core::tokenizer::ITEM_OFFSET;
use encore_core::weights::load_model;
use encore_tests::{small_world, split, tiny_weight_file};

#[test]
fn ranks_do_not_depend_on_the_models_item_order() {
    let world = small_world();
    let (train, test) = split(&world);
    let loaded = load_model(&tiny_weight_file(&world, 1), &Device::flex()).unwrap();
    let ids = loaded.items.ids().to_vec();
    let n = ids.len();
    // The same model with its item rows (and their ids) in reverse order.
    let reversed_ids: Vec<u32> = ids.iter().rev().copied().collect();
    let rows: Vec<i64> = (0..ITEM_OFFSET as i64)
        .chain((0..n as i64).rev().map(|j| j + ITEM_OFFSET as i64))
        .collect();
    let mut reversed = loaded.model.clone();
    let table = reversed.embedding.item.weight.val();
    let picked = Tensor::<1, Int>::from_data(
        TensorData::new(rows, [n + ITEM_OFFSET as usize]),
        &table.device(),
    );
    reversed.embedding.item.weight = Param::from_tensor(table.select(0, picked));
    let in_catalog_order = Reranker::new(loaded.model, loaded.config.clone(), loaded.items);
    let in_reverse_order = Reranker::new(
        reversed,
        loaded.config,
        ItemVocabulary::new(reversed_ids).unwrap(),
    );
    assert_ne!(
        in_catalog_order.items().ids(),
        in_reverse_order.items().ids()
    );
    let protocol = EvalProtocol::leave_one_out();
    let (model_a, pop_a) =
        ranks(&in_catalog_order, &world.catalog, &train, &test, &protocol).unwrap();
    let (model_b, pop_b) =
        ranks(&in_reverse_order, &world.catalog, &train, &test, &protocol).unwrap();
    assert_eq!(model_a.len(), test.len());
    assert_eq!(model_a, model_b, "model ranks depend on the item order");
    assert_eq!(
        pop_a, pop_b,
        "most-popular ranks depend on the model's item order"
    );
    // History exclusion is in force: some case ranks its target above a history item.
    let (unexcluded, _) = ranks(
        &in_catalog_order,
        &world.catalog,
        &train,
        &test,
        &EvalProtocol {
            exclude_history: false,
            ..protocol
        },
    )
    .unwrap();
    assert!(
        model_a.iter().zip(&unexcluded).any(|(a, b)| a < b),
        "excluding history items changed no rank"
    );
}
