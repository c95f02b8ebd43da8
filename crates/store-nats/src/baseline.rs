//! The baseline `gridwatch bench --cluster` measures the store against, in the same run on
//! the same cluster: bare JetStream publishes, each waiting for its acknowledgement, on a
//! stream made as the log's is (file storage, the same replicas, atomic batches allowed),
//! with a message id and an expected last subject sequence as the store's publishes carry:
//! what the cluster itself costs, with none of the store's reads, checks and mirror.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;

use crate::{NatsConfig, StoreError, backend, connect, open_stream};

/// Acknowledged messages per second of `concurrency` publishers (a subject each, one
/// message of `payload_bytes` at a time, or an atomic batch of `batch` such messages) on a
/// new stream named after `config.stream`.
pub async fn publish_rate(
    config: &NatsConfig,
    concurrency: usize,
    batch: usize,
    payload_bytes: usize,
    duration: Duration,
) -> Result<f64, StoreError> {
    let (client, context) = connect(config).await?;
    open_stream(&context, config).await?;
    let started = Instant::now();
    let deadline = started + duration;
    let publishers: Vec<_> = (0..concurrency)
        .map(|publisher| {
            let (client, subject) = (client.clone(), format!("{}.e.raw-{publisher}", config.subject_prefix));
            tokio::spawn(async move {
                let payload = bytes::Bytes::from(vec![7u8; payload_bytes]);
                let mut last = 0u64;
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let ids: Vec<String> = (0..batch).map(|_| uuid::Uuid::now_v7().to_string()).collect();
                    let batch_id = uuid::Uuid::now_v7().simple().to_string();
                    // Sent again as it is while JetStream answers that it is busy (a
                    // conflict with nothing written), as the store does.
                    loop {
                        let mut reply = None;
                        for (index, id) in ids.iter().enumerate() {
                            let mut headers = HeaderMap::new();
                            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                            if index == 0 {
                                let last = last.to_string();
                                headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, last.as_str());
                            }
                            if batch > 1 {
                                headers.insert(async_nats::header::NATS_BATCH_ID, batch_id.as_str());
                                headers
                                    .insert(async_nats::header::NATS_BATCH_SEQUENCE, (index + 1).to_string().as_str());
                            }
                            if index + 1 < batch {
                                client
                                    .publish_with_headers(subject.clone(), headers, payload.clone())
                                    .await
                                    .map_err(backend)?;
                                continue;
                            }
                            if batch > 1 {
                                headers.insert(
                                    async_nats::header::NATS_BATCH_COMMIT,
                                    async_nats::header::NATS_BATCH_COMMIT_FINAL,
                                );
                            }
                            reply = Some(client.request_with_headers(subject.clone(), headers, payload.clone()).await);
                        }
                        let reply = reply.ok_or_else(|| backend("an empty batch"))?;
                        match crate::published(&reply.map_err(backend)?.payload)? {
                            crate::Published::Stored { last_sequence, .. } => {
                                last = last_sequence;
                                break;
                            }
                            crate::Published::Conflict => tokio::task::yield_now().await,
                            other => return Err(backend(format!("a bare publish was not stored: {other:?}"))),
                        }
                    }
                    count += batch as u64;
                }
                Ok::<u64, StoreError>(count)
            })
        })
        .collect();
    let mut total = 0;
    for publisher in publishers {
        total += publisher.await.map_err(backend)??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Deletes the stream named `config.stream` and the key-value buckets named after it
/// (`<stream>_<name>` for each of `buckets`), what a benchmark made; one that is not there is
/// no error.
pub async fn remove(config: &NatsConfig, buckets: &[&str]) -> Result<(), StoreError> {
    let (_, context) = connect(config).await?;
    for bucket in buckets {
        let _ = context.delete_key_value(format!("{}_{bucket}", config.stream)).await;
    }
    match context.delete_stream(&config.stream).await {
        Ok(_) => Ok(()),
        Err(error) if error.to_string().contains("not found") => Ok(()),
        Err(error) => Err(backend(error)),
    }
}
