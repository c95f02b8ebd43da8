//! `Registry`: the places and people, by id, with corrections applied.

use std::collections::BTreeMap;

use events_schema::{EntityId, Event, RecordedEvent, SiteKind, StaffRole};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Community {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub name: String,
    pub community_id: EntityId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub name: String,
    pub grid_id: EntityId,
    pub kind: SiteKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub name: String,
    pub site_id: EntityId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Staff {
    pub display_name: String,
    pub role: StaffRole,
}

/// Everything registered, by id. Ordered maps, so that every listing is deterministic.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Registry {
    pub communities: BTreeMap<EntityId, Community>,
    pub grids: BTreeMap<EntityId, Grid>,
    pub sites: BTreeMap<EntityId, Site>,
    pub checkpoints: BTreeMap<EntityId, Checkpoint>,
    pub staff: BTreeMap<EntityId, Staff>,
}

impl Registry {
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        match &recorded.event {
            Event::EventCorrected(correction) => self.apply_event(&correction.replacement),
            event => self.apply_event(event),
        }
    }

    fn apply_event(&mut self, event: &Event) {
        match event {
            Event::CommunityRegistered(e) => {
                self.communities.insert(e.community_id.clone(), Community { name: e.name.clone() });
            }
            Event::GridRegistered(e) => {
                self.grids
                    .insert(e.grid_id.clone(), Grid { name: e.name.clone(), community_id: e.community_id.clone() });
            }
            Event::SiteRegistered(e) => {
                self.sites
                    .insert(e.site_id.clone(), Site { name: e.name.clone(), grid_id: e.grid_id.clone(), kind: e.kind });
            }
            Event::CheckpointRegistered(e) => {
                self.checkpoints
                    .insert(e.checkpoint_id.clone(), Checkpoint { name: e.name.clone(), site_id: e.site_id.clone() });
            }
            Event::StaffRegistered(e) => {
                self.staff.insert(e.staff_id.clone(), Staff { display_name: e.display_name.clone(), role: e.role });
            }
            Event::CheckpointClosed(_)
            | Event::CheckpointReopened(_)
            | Event::TeamFormed(_)
            | Event::CheckpointScheduleSet(_)
            | Event::PatrolCheckRecorded(_)
            | Event::TrafficTallyRecorded(_)
            | Event::InspectionRecorded(_)
            | Event::PatrolRoundStarted(_)
            | Event::PatrolRoundItemTicked(_)
            | Event::PatrolRoundCompleted(_)
            | Event::GateIssueRaised(_)
            | Event::GateIssueAcknowledged(_)
            | Event::GateIssueAssigned(_)
            | Event::GateIssueActionTaken(_)
            | Event::GateIssueEscalated(_)
            | Event::GateIssueResolved(_)
            | Event::GateIssueResolutionVerified(_)
            | Event::GateIssueReopened(_)
            | Event::QuarantineReleaseNoticeDelivered(_)
            | Event::SuppliesDelivered(_)
            | Event::DirectiveReceived(_)
            | Event::LedgerTaskAssigned(_)
            | Event::LedgerTaskCompleted(_)
            | Event::FieldNoteRecorded(_)
            | Event::EventCorrected(_)
            | Event::EventRetracted(_)
            | Event::DaySealed(_) => {}
        }
    }

    /// The site of a checkpoint, and that site's grid and community, as far as known.
    pub fn place_of(&self, checkpoint_id: &EntityId) -> (Option<&EntityId>, Option<&EntityId>, Option<&EntityId>) {
        let site = self.checkpoints.get(checkpoint_id).map(|c| &c.site_id);
        let grid = site.and_then(|s| self.sites.get(s)).map(|s| &s.grid_id);
        let community = grid.and_then(|g| self.grids.get(g)).map(|g| &g.community_id);
        (site, grid, community)
    }
}
