//! The flow table as `tracekit index` stores it: Parquet, one column per field of a [`Row`],
//! named and ordered as the JSON keys, in row groups of [`ROW_GROUP`] rows, zstd (see
//! docs/index-format.md); read back whole, or only the rows a ranking keeps.

use std::io::Write;

use crate::row::{Rank, Row};

/// Writes flow rows as Parquet; returns how many.
///
/// # Errors
/// The writer's, or the Parquet encoder's.
pub fn store_rows(
    rows: impl Iterator<Item = Row<Vec<String>>>,
    out: &mut (dyn Write + Send),
) -> Result<u64, String> {
    let fields = parquet_fields().map_err(|e| e.to_string())?;
    let schema = std::sync::Arc::new(arrow_schema::Schema::new(fields.clone()));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::default(),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP));
    // Counters, ports and frame numbers as deltas, the times (RFC 3339 strings sharing their
    // front) by shared prefix: 17% smaller than dictionaries on the bench (docs/index-format.md).
    let delta_ints = [
        "stream",
        "client_port",
        "server_port",
        "packets_c2s",
        "packets_s2c",
        "bytes_c2s",
        "bytes_s2c",
        "first_frame",
        "last_frame",
    ];
    let props = delta_ints
        .iter()
        .map(|c| (c, parquet::basic::Encoding::DELTA_BINARY_PACKED))
        .chain(
            ["first_ts", "last_ts"]
                .iter()
                .map(|c| (c, parquet::basic::Encoding::DELTA_BYTE_ARRAY)),
        )
        .fold(props, |p, (c, e)| {
            let c = parquet::schema::types::ColumnPath::from(*c);
            p.set_column_dictionary_enabled(c.clone(), false)
                .set_column_encoding(c, e)
        })
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(out, schema, Some(props))
        .map_err(|e| e.to_string())?;
    let mut rows = rows.peekable();
    let mut n = 0u64;
    while rows.peek().is_some() {
        let chunk: Vec<Row<Vec<String>>> = rows.by_ref().take(ROW_GROUP).collect();
        n += chunk.len() as u64;
        let batch = serde_arrow::to_record_batch(&fields, &chunk).map_err(|e| e.to_string())?;
        w.write(&batch).map_err(|e| e.to_string())?;
    }
    w.close().map_err(|e| e.to_string())?;
    Ok(n)
}

/// Rows a row group of the stored flow table holds.
pub const ROW_GROUP: usize = 65_536;

/// The Parquet columns of a row: its fields, in order, with their types.
fn parquet_fields() -> Result<Vec<arrow_schema::FieldRef>, serde_arrow::Error> {
    use serde_arrow::schema::{SchemaLike, TracingOptions};
    Vec::<arrow_schema::FieldRef>::from_type::<Row<Vec<String>>>(TracingOptions::default())
}

/// The rows of a flow table [`store_rows`] wrote, read a row group at a time; `only`: the rows
/// to read (ascending positions), the others not decoded.
pub fn rows(
    bytes: bytes::Bytes,
    only: Option<&[usize]>,
) -> Result<impl Iterator<Item = Result<Row<Vec<String>>, String>>, String> {
    use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    if let Some(rows) = only {
        let total = usize::try_from(builder.metadata().file_metadata().num_rows())
            .map_err(|e| e.to_string())?;
        builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(
            rows.iter().map(|&i| i..i + 1),
            total,
        ));
    }
    let reader = builder.build().map_err(|e| e.to_string())?;
    Ok(reader.flat_map(|batch| {
        let rows: Result<Vec<Row<Vec<String>>>, String> = batch
            .map_err(|e| e.to_string())
            .and_then(|b| serde_arrow::from_record_batch(&b).map_err(|e| e.to_string()));
        match rows {
            Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        }
    }))
}

/// The positions of the `n` stored rows `--top` keeps, largest first (ties in order of first
/// appearance, as for a scan), from the ranking's columns alone.
pub fn top(bytes: bytes::Bytes, n: usize, by: &str) -> Result<Vec<usize>, String> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let columns = [
        "first_ts",
        "last_ts",
        "duration",
        "packets_c2s",
        "packets_s2c",
        "bytes_c2s",
        "bytes_s2c",
    ];
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns);
    let mut keys: Vec<i128> = Vec::new();
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let ranks: Vec<Rank> = serde_arrow::from_record_batch(&batch).map_err(|e| e.to_string())?;
        keys.extend(ranks.iter().map(|r| r.key(by)));
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[b].cmp(&keys[a]).then(a.cmp(&b)));
    order.truncate(n);
    Ok(order)
}
