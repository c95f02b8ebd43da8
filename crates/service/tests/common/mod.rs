//! What the service's integration tests share: ids, times, who acts, the small world of one
//! community with one gate, and a patrol check at that gate.

// Test code: an unwrap that fails is a failed test. Each test file uses part of this.
#![allow(clippy::unwrap_used, dead_code)]

use domain::Command;
use events_schema::*;
use service::CommandMeta;

pub fn id(text: &str) -> EntityId {
    EntityId::new(text).unwrap()
}

pub fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Staff member `staff-1` acting now.
pub fn meta() -> CommandMeta {
    CommandMeta {
        event_id: None,
        occurred_at: None,
        actor: id("staff-1"),
        correlation_id: None,
        expected_version: None,
    }
}

/// Staff member `staff-1` acting, at field time `text`.
pub fn in_the_field(text: &str) -> CommandMeta {
    CommandMeta { occurred_at: Some(at(text)), ..meta() }
}

/// A check of `gate-1` by `staff-1`, present, with `result`.
pub fn gate_check(result: CheckResult) -> PatrolCheckRecorded {
    PatrolCheckRecorded {
        checkpoint_id: id("gate-1"),
        staff_id: id("staff-1"),
        result,
        staff_present: Some(true),
        protective_gear_worn: None,
        thermometer_working: None,
        health_code_scan_enforced: None,
        passage_logbook_kept: None,
        queue_orderly: None,
        weather: None,
        round_id: None,
        note: None,
    }
}

pub fn world() -> Vec<Command> {
    vec![
        Command::RegisterCommunity(CommunityRegistered {
            community_id: id("minxin"),
            name: "Minxin".into(),
            parent_area: None,
        }),
        Command::RegisterGrid(GridRegistered {
            grid_id: id("grid-3"),
            community_id: id("minxin"),
            name: "Grid 3".into(),
        }),
        Command::RegisterSite(SiteRegistered {
            site_id: id("longwu"),
            grid_id: id("grid-3"),
            name: "Longwu".into(),
            kind: SiteKind::ResidentialCompound,
        }),
        Command::RegisterCheckpoint(CheckpointRegistered {
            checkpoint_id: id("gate-1"),
            site_id: id("longwu"),
            name: "Main gate".into(),
        }),
        Command::RegisterStaff(StaffRegistered {
            staff_id: id("staff-1"),
            display_name: "Deputy".into(),
            role: StaffRole::DeployedCadre,
            grid_id: None,
        }),
    ]
}
