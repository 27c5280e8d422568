//! Embedding files: one Parquet file per table (`id: uint32`, `vector: fixed_size_list<float32>`,
//! the provenance as key-value metadata) and one safetensors file holding both tables
//! (`item_ids`, `item_vectors`, `member_ids`, `member_vectors`; the provenance as its metadata).
//! Every file is written atomically; a path that cannot be written is an error naming it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{EmbeddingSource, EmbeddingTable, Embeddings};
use crate::io::write_atomic;

/// The key-value pairs a file's metadata holds.
fn source_pairs(source: &EmbeddingSource) -> Vec<(String, String)> {
    vec![
        ("encore.model_version".into(), source.model_version.clone()),
        (
            "encore.training_data_until".into(),
            source.training_data_until.to_string(),
        ),
        (
            "encore.as_of".into(),
            source
                .as_of
                .map_or_else(|| "latest".into(), |t| t.to_string()),
        ),
        ("encore.aligned_to".into(), source.aligned_to.clone()),
    ]
}

/// The provenance back from a file's key-value pairs.
fn source_from(pairs: &HashMap<String, String>, path: &Path) -> anyhow::Result<EmbeddingSource> {
    let get = |key: &str| {
        pairs
            .get(key)
            .cloned()
            .with_context(|| format!("{}: no {key} in its metadata", path.display()))
    };
    let number = |key: &str| -> anyhow::Result<i64> {
        let v = get(key)?;
        v.parse()
            .with_context(|| format!("{}: {key} is {v:?}, not a number", path.display()))
    };
    let as_of = get("encore.as_of")?;
    Ok(EmbeddingSource {
        model_version: get("encore.model_version")?,
        training_data_until: number("encore.training_data_until")?,
        as_of: if as_of == "latest" {
            None
        } else {
            Some(number("encore.as_of")?)
        },
        aligned_to: get("encore.aligned_to")?,
    })
}

/// Writes `table` as a Parquet file at `path`.
pub fn write_parquet(
    table: &EmbeddingTable,
    source: &EmbeddingSource,
    path: &Path,
) -> anyhow::Result<()> {
    let dim = i32::try_from(table.dim).context("vector width over i32")?;
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt32, false),
        Field::new("vector", DataType::FixedSizeList(item.clone(), dim), false),
    ]));
    let vectors = FixedSizeListArray::try_new(
        item,
        dim,
        Arc::new(Float32Array::from(table.vectors.clone())),
        None,
    )?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from(table.ids.clone())),
        Arc::new(vectors),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let metadata = source_pairs(source)
        .into_iter()
        .map(|(k, v)| KeyValue::new(k, v))
        .collect();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(metadata))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    write_atomic(path, &bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a Parquet file written by [`write_parquet`].
pub fn read_parquet(path: &Path) -> anyhow::Result<(EmbeddingTable, EmbeddingSource)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a Parquet file", path.display()))?;
    let pairs: HashMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|p| p.value.clone().map(|v| (p.key.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let source = source_from(&pairs, path)?;
    let mut table = EmbeddingTable {
        ids: Vec::new(),
        dim: 0,
        vectors: Vec::new(),
    };
    for batch in builder.build()? {
        let batch = batch?;
        let bad = || {
            anyhow::anyhow!(
                "{}: expected columns id: uint32, vector: fixed_size_list<float32>",
                path.display()
            )
        };
        let ids = batch
            .column_by_name("id")
            .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
            .ok_or_else(bad)?;
        let vectors = batch
            .column_by_name("vector")
            .and_then(|c| c.as_any().downcast_ref::<FixedSizeListArray>())
            .ok_or_else(bad)?;
        table.dim = vectors.value_length() as usize;
        table.ids.extend(ids.values().iter().copied());
        let values = vectors
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .ok_or_else(bad)?;
        table.vectors.extend(values.values().iter().copied());
    }
    Ok((table, source))
}

/// Writes both tables of `embeddings` as one safetensors file at `path`.
pub fn write_safetensors(embeddings: &Embeddings, path: &Path) -> anyhow::Result<()> {
    let ids = |t: &EmbeddingTable| -> Vec<u8> { le_bytes_u32(&t.ids) };
    let vectors = |t: &EmbeddingTable| -> Vec<u8> { le_bytes_f32(&t.vectors) };
    let (item_ids, item_vectors) = (ids(&embeddings.items), vectors(&embeddings.items));
    let (member_ids, member_vectors) = (ids(&embeddings.members), vectors(&embeddings.members));
    let (ni, nm) = (embeddings.items.len(), embeddings.members.len());
    let views = vec![
        (
            "item_ids",
            TensorView::new(Dtype::U32, vec![ni], &item_ids)?,
        ),
        (
            "item_vectors",
            TensorView::new(Dtype::F32, vec![ni, embeddings.items.dim], &item_vectors)?,
        ),
        (
            "member_ids",
            TensorView::new(Dtype::U32, vec![nm], &member_ids)?,
        ),
        (
            "member_vectors",
            TensorView::new(
                Dtype::F32,
                vec![nm, embeddings.members.dim],
                &member_vectors,
            )?,
        ),
    ];
    let info: HashMap<String, String> = source_pairs(&embeddings.source).into_iter().collect();
    let bytes = safetensors::serialize(views, Some(info))?;
    write_atomic(path, &bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a safetensors file written by [`write_safetensors`].
pub fn read_safetensors(path: &Path) -> anyhow::Result<Embeddings> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let pairs = metadata.metadata().clone().unwrap_or_default();
    let source = source_from(&pairs, path)?;
    let file = SafeTensors::deserialize(&bytes)?;
    let table = |ids: &str, vectors: &str| -> anyhow::Result<EmbeddingTable> {
        let i = file
            .tensor(ids)
            .with_context(|| format!("{}: no {ids}", path.display()))?;
        let v = file
            .tensor(vectors)
            .with_context(|| format!("{}: no {vectors}", path.display()))?;
        anyhow::ensure!(
            i.dtype() == Dtype::U32 && v.dtype() == Dtype::F32 && v.shape().len() == 2,
            "{}: {ids} must be u32 and {vectors} a 2-d f32 tensor",
            path.display()
        );
        let ids: Vec<u32> = i
            .data()
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        anyhow::ensure!(
            v.shape()[0] == ids.len(),
            "{}: {} ids for {} vectors",
            path.display(),
            ids.len(),
            v.shape()[0]
        );
        Ok(EmbeddingTable {
            ids,
            dim: v.shape()[1],
            vectors: v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        })
    };
    Ok(Embeddings {
        items: table("item_ids", "item_vectors")?,
        members: table("member_ids", "member_vectors")?,
        source,
    })
}

/// Little-endian bytes of `v` (safetensors' byte order).
fn le_bytes_u32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of `v` (safetensors' byte order).
fn le_bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Embeddings {
        Embeddings {
            items: EmbeddingTable {
                ids: vec![7, 3, 11],
                dim: 2,
                vectors: vec![0.5, -1.0, 2.25, 0.0, -0.125, 3.5],
            },
            members: EmbeddingTable {
                ids: vec![42, 1],
                dim: 2,
                vectors: vec![1.0, 2.0, -3.0, 4.5],
            },
            source: EmbeddingSource {
                model_version: "0badc0de".into(),
                training_data_until: 1_700_000_000,
                as_of: Some(1_700_000_500),
                aligned_to: String::new(),
            },
        }
    }

    #[test]
    fn parquet_and_safetensors_files_round_trip_with_their_provenance() {
        let dir = std::env::temp_dir().join(format!("encore-embed-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = sample();
        write_parquet(&e.items, &e.source, &dir.join("items.parquet")).unwrap();
        let (items, source) = read_parquet(&dir.join("items.parquet")).unwrap();
        assert_eq!((items, source), (e.items.clone(), e.source.clone()));
        let latest = EmbeddingSource {
            as_of: None,
            aligned_to: "12345678".into(),
            ..e.source.clone()
        };
        write_parquet(&e.members, &latest, &dir.join("members.parquet")).unwrap();
        assert_eq!(
            read_parquet(&dir.join("members.parquet")).unwrap(),
            (e.members.clone(), latest)
        );
        write_safetensors(&e, &dir.join("e.safetensors")).unwrap();
        assert_eq!(read_safetensors(&dir.join("e.safetensors")).unwrap(), e);

        // A path that cannot be written, and files that are not what they should be.
        let blocked = dir.join("items.parquet").join("x.parquet");
        let err = format!(
            "{:#}",
            write_parquet(&e.items, &e.source, &blocked).unwrap_err()
        );
        assert!(
            err.contains("cannot write") && err.contains("x.parquet"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            read_parquet(&dir.join("e.safetensors")).unwrap_err()
        );
        assert!(err.contains("is not a Parquet file"), "{err}");
        let err = format!("{:#}", read_safetensors(&dir.join("nothing")).unwrap_err());
        assert!(err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
