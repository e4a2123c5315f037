//! Every NATS message decoder, fed arbitrary bytes, arbitrary JSON and real
//! messages with one value swapped or removed: it answers `Ok` or `Err`,
//! never panics, and what it accepts encodes and decodes back unchanged
//! (so a relayed message means what the sender meant).

use chrono::Utc;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use vapora_shared::testing::{arbitrary_json, mutate};
use vapora_shared::wire::{
    CancelRequest, Heartbeat, MaxDeliveriesAdvisory, PROTOCOL_VERSION, TaskAttempt, TaskReport, report_msg_id,
};
use vapora_shared::{AgentId, Priority, ProjectId, Role, TaskId, TaskResult};

/// Decodes like the consumers do (`serde_json::from_slice`); checks what is
/// accepted survives a round trip.
fn decode<T>(bytes: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let decoded: T = serde_json::from_slice(bytes).ok()?;
    let again: T = serde_json::from_slice(&serde_json::to_vec(&decoded).unwrap()).unwrap();
    assert_eq!(again, decoded);
    Some(decoded)
}

fn decode_all(bytes: &[u8]) {
    if let Some(report) = decode::<TaskReport>(bytes) {
        // The consumers derive the message id and the task from any report.
        let id = report_msg_id(&report);
        assert!(id.starts_with(&report.task_id().to_string()));
    }
    decode::<TaskAttempt>(bytes);
    decode::<Heartbeat>(bytes);
    decode::<CancelRequest>(bytes);
    decode::<MaxDeliveriesAdvisory>(bytes);
}

/// One real message of every kind, as the services send them.
fn real_messages() -> Vec<Value> {
    let (task_id, project_id, agent_id) = (TaskId::new(), ProjectId::new(), AgentId::from("agent-a"));
    let role = Role::parse("developer").unwrap();
    let reports = [
        TaskReport::Started {
            task_id,
            attempt: 1,
            agent_id: agent_id.clone(),
        },
        TaskReport::Progress {
            task_id,
            project_id,
            attempt: 1,
            agent_id: agent_id.clone(),
            seq: 3,
            chunk: "partial ünïcode output".into(),
        },
        TaskReport::Succeeded {
            task_id,
            attempt: 1,
            agent_id: agent_id.clone(),
            result: TaskResult {
                output: "done".into(),
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
                tokens_in: 12,
                tokens_out: 34,
                cost_usd: 0.000_12,
                attempts: 1,
                output_truncated: false,
            },
        },
        TaskReport::Failed {
            task_id,
            attempt: 2,
            agent_id: agent_id.clone(),
            error: "upstream 500".into(),
        },
    ];
    let mut messages: Vec<Value> = reports.iter().map(|r| serde_json::to_value(r).unwrap()).collect();
    messages.push(
        serde_json::to_value(TaskAttempt {
            protocol: PROTOCOL_VERSION,
            task_id,
            project_id,
            attempt: 1,
            role: role.clone(),
            priority: Priority::High,
            title: "t".into(),
            description: "d".into(),
            dispatched_at: Utc::now(),
            context: vec![vapora_shared::PromptContext {
                label: "Reviewer's comment".into(),
                text: "Shorter, please.".into(),
            }],
            timeout_secs: Some(30),
        })
        .unwrap(),
    );
    messages.push(
        serde_json::to_value(Heartbeat {
            protocol: PROTOCOL_VERSION,
            agent_id,
            roles: vec![role],
            load: 1,
            capacity: 4,
            version: "0.1.0".into(),
            interval_ms: 3_000,
            sent_at: Utc::now(),
        })
        .unwrap(),
    );
    messages.push(serde_json::to_value(CancelRequest { task_id, attempt: 1 }).unwrap());
    messages.push(
        serde_json::to_value(MaxDeliveriesAdvisory {
            stream: "VAPORA_TASKS".into(),
            consumer: "developer".into(),
            stream_seq: 7,
            deliveries: 5,
        })
        .unwrap(),
    );
    messages
}

#[test]
fn the_real_messages_decode() {
    for message in real_messages() {
        let bytes = serde_json::to_vec(&message).unwrap();
        let decoded = [
            decode::<TaskReport>(&bytes).is_some(),
            decode::<TaskAttempt>(&bytes).is_some(),
            decode::<Heartbeat>(&bytes).is_some(),
            decode::<CancelRequest>(&bytes).is_some(),
            decode::<MaxDeliveriesAdvisory>(&bytes).is_some(),
        ];
        assert!(decoded.contains(&true), "{message}");
    }
}

/// A cost the default float parser of `serde_json` read back one unit in
/// the last place off (found by `real_messages_with_one_value_changed`):
/// relayed costs must be the ones the agent reported.
#[test]
fn costs_survive_a_relay_exactly() {
    let mut message = real_messages()[2].clone();
    message["result"]["cost_usd"] = serde_json::json!(1.665_021_500_769_104_1e18);
    let bytes = serde_json::to_vec(&message).unwrap();
    let report = decode::<TaskReport>(&bytes).expect("a report");
    let TaskReport::Succeeded { result, .. } = report else {
        panic!("{report:?}")
    };
    assert_eq!(
        result.cost_usd.to_bits(),
        1.665_021_500_769_104_1e18_f64.to_bits()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_json_documents(document in arbitrary_json()) {
        decode_all(&serde_json::to_vec(&document).unwrap());
    }

    #[test]
    fn real_messages_with_one_value_changed(
        which in any::<usize>(),
        pick in any::<usize>(),
        replacement in prop::option::of(arbitrary_json()),
    ) {
        let messages = real_messages();
        let message = mutate(&messages[which % messages.len()], pick, replacement);
        decode_all(&serde_json::to_vec(&message).unwrap());
    }
}
