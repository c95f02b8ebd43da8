//! The demo data set: a month of gate duty in one community (2020-02-12 to 2020-03-09),
//! built from the facts of the seed account (its compounds and gates, the gate issues and how
//! each was solved, quarantine releases, supplies, directives, field notes) and filled out
//! with routine checks and traffic tallies so that reports have real numbers.
//!
//! Deterministic: the same commands, times and event ids every time, so loading it twice
//! writes nothing the second time. People appear only as roles; the texts are our own.

use domain::Command;
use events_schema::*;
use jiff::civil::{Date, date, time};
use jiff::tz::TimeZone;
use uuid::Uuid;

/// One command of the demo, with when it happened, who did it, and its event id.
#[derive(Clone, Debug)]
pub struct DemoCommand {
    pub occurred_at: Timestamp,
    pub actor: EntityId,
    pub event_id: Uuid,
    pub command: Command,
}

/// The first and last day of the demo month.
pub const DEMO_FIRST_DAY: Date = date(2020, 2, 12);
pub const DEMO_LAST_DAY: Date = date(2020, 3, 9);

fn id(text: &str) -> EntityId {
    EntityId::new(text).expect("demo ids are valid")
}

/// (checkpoint, site, name) of every gate.
const GATES: [(&str, &str, &str); 8] = [
    ("jiaduoli-north", "jiaduoli", "North gate"),
    ("jiaduoli-south", "jiaduoli", "South gate"),
    ("jiaduoli-east", "jiaduoli", "East gate"),
    ("jiaduoli-west", "jiaduoli", "West gate"),
    ("dehong-main", "dehong", "Main gate"),
    ("dehong-garage", "dehong", "Garage gate"),
    ("longwu-main", "longwu", "Main gate"),
    ("feicui-main", "feicui", "Main gate"),
];

/// The team: (id, what the team calls them, role).
const STAFF: [(&str, &str, StaffRole); 6] = [
    ("cadre-1", "Deployed deputy head", StaffRole::DeployedCadre),
    ("grid-1", "Grid worker (north)", StaffRole::GridWorker),
    ("grid-2", "Grid worker (south)", StaffRole::GridWorker),
    ("property-1", "Property office head", StaffRole::PropertyManagement),
    ("guard-1", "Gate guard, day shift", StaffRole::Guard),
    ("guard-2", "Gate guard, evening shift", StaffRole::Guard),
];

/// Builds the demo's commands in the order they happened.
struct Builder {
    time_zone: TimeZone,
    commands: Vec<DemoCommand>,
    random: u64,
}

impl Builder {
    fn at(&self, day: Date, hour: i8, minute: i8) -> Timestamp {
        let zoned = day
            .to_datetime(time(hour, minute, 0, 0))
            .to_zoned_datetime(self.time_zone.clone())
            .expect("demo times exist");
        Timestamp::from_jiff(zoned.timestamp())
    }

    /// xorshift64*: plausible variety, the same every time.
    fn next(&mut self, below: u64) -> u64 {
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        self.random.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }

    fn push(&mut self, day: Date, hour: i8, minute: i8, actor: &str, command: impl Into<Command>) {
        let occurred_at = self.at(day, hour, minute);
        let sequence = self.commands.len() as u64;
        let mut tail = [0u8; 10];
        tail[2..].copy_from_slice(&sequence.to_be_bytes());
        let millis = u64::try_from(occurred_at.as_microsecond() / 1000).expect("after 1970");
        let event_id = uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid();
        self.commands.push(DemoCommand { occurred_at, actor: id(actor), event_id, command: command.into() });
    }
}

fn check(
    gate: &str,
    staff: &str,
    result: CheckResult,
    weather: Option<Weather>,
    note: Option<&str>,
) -> PatrolCheckRecorded {
    PatrolCheckRecorded {
        checkpoint_id: id(gate),
        staff_id: id(staff),
        result,
        staff_present: Some(true),
        protective_gear_worn: Some(true),
        thermometer_working: Some(true),
        health_code_scan_enforced: Some(true),
        passage_logbook_kept: Some(true),
        queue_orderly: Some(result == CheckResult::Ok),
        weather,
        round_id: None,
        note: note.map(str::to_owned),
    }
}

fn note(author: &str, site: Option<&str>, weather: Option<Weather>, text: &str) -> FieldNoteRecorded {
    FieldNoteRecorded { author: id(author), text: text.into(), site_id: site.map(id), weather }
}

/// The whole demo, in the order things happened.
pub fn demo_commands(time_zone: &TimeZone) -> Vec<DemoCommand> {
    let mut b = Builder { time_zone: time_zone.clone(), commands: Vec::new(), random: 0x9e37_79b9_7f4a_7c15 };
    let first = DEMO_FIRST_DAY;
    // Places and people, registered the morning the team arrived.
    b.push(
        first,
        7,
        0,
        "cadre-1",
        CommunityRegistered {
            community_id: id("minxin"),
            name: "Minxin Community".into(),
            parent_area: Some("Cuizhu subdistrict, Luohu district, Shenzhen".into()),
        },
    );
    b.push(
        first,
        7,
        0,
        "cadre-1",
        GridRegistered { grid_id: id("minxin-grid-3"), community_id: id("minxin"), name: "Grid 3".into() },
    );
    let sites = [
        ("jiaduoli", "Jiaduoli Garden", SiteKind::ResidentialCompound),
        ("dehong", "Dehong Tianxia Huafu", SiteKind::ResidentialCompound),
        ("longwu", "Longwu Compound", SiteKind::ResidentialCompound),
        ("feicui", "Feicui Apartments", SiteKind::ResidentialCompound),
        ("venues-east", "Shops and small venues, east street", SiteKind::SmallVenue),
        ("enterprise-park", "Enterprise park", SiteKind::SmallVenue),
    ];
    for (site, name, kind) in sites {
        let registered = SiteRegistered { site_id: id(site), grid_id: id("minxin-grid-3"), name: name.into(), kind };
        b.push(first, 7, 1, "cadre-1", registered);
    }
    for (gate, site, name) in GATES {
        b.push(
            first,
            7,
            2,
            "cadre-1",
            CheckpointRegistered { checkpoint_id: id(gate), site_id: id(site), name: name.into() },
        );
        b.push(
            first,
            7,
            2,
            "cadre-1",
            CheckpointScheduleSet {
                checkpoint_id: id(gate),
                check_interval_minutes: 210,
                active_from: time(7, 0, 0, 0),
                active_until: time(22, 0, 0, 0),
            },
        );
    }
    for (staff, name, role) in STAFF {
        b.push(
            first,
            7,
            3,
            "cadre-1",
            StaffRegistered {
                staff_id: id(staff),
                display_name: name.into(),
                role,
                grid_id: Some(id("minxin-grid-3")),
            },
        );
    }
    b.push(
        first,
        7,
        4,
        "cadre-1",
        TeamFormed {
            team_id: id("task-force-3"),
            grid_id: id("minxin-grid-3"),
            name: "Grid 3 task force".into(),
            member_ids: vec![id("cadre-1"), id("grid-1"), id("grid-2")],
        },
    );

    let mut day = first;
    while day <= DEMO_LAST_DAY {
        routine(&mut b, day);
        story(&mut b, day);
        let Ok(next) = day.tomorrow() else { break };
        day = next;
    }
    b.commands.sort_by_key(|command| command.occurred_at);
    b.commands
}

/// Checks every gate every few hours, and tallies each gate's logbook at noon and at night.
fn routine(b: &mut Builder, day: Date) {
    let weather = match (day.month(), day.day()) {
        (2, 13) => Some(Weather::Rain),
        (2, 17) | (2, 18) => Some(Weather::Cold),
        _ => None,
    };
    let checkers = ["cadre-1", "grid-1", "grid-2"];
    for (index, (gate, _, _)) in GATES.iter().enumerate() {
        for hour in [8i8, 11, 14, 17, 20] {
            // Now and then a round is late or skipped, so that coverage has gaps to show.
            if b.next(17) == 0 {
                continue;
            }
            let minute = (b.next(20) + 5) as i8;
            let staff = checkers[(index + hour as usize) % checkers.len()];
            b.push(day, hour, minute, staff, check(gate, staff, CheckResult::Ok, weather, None));
        }
        for (start, end) in [(7i8, 12i8), (12, 22)] {
            let people = (180 + b.next(220)) as u32;
            let tally = TrafficTallyRecorded {
                checkpoint_id: id(gate),
                recorded_by: id("guard-1"),
                period_start: b.at(day, start, 0),
                period_end: b.at(day, end, 0),
                people_screened: people,
                vehicles: (b.next(40)) as u32,
                fever_flags: u32::from(b.next(60) == 0),
                refused_scans: (b.next(4)) as u32,
                temporary_passes_issued: (b.next(3)) as u32,
            };
            b.push(day, end, 5, "guard-1", tally);
        }
    }
}

/// What happened on the days the account tells of.
fn story(b: &mut Builder, day: Date) {
    match (day.month(), day.day()) {
        (2, 12) => {
            b.push(day, 21, 30, "cadre-1", note("cadre-1", None, Some(Weather::Cloudy), "First day with the grid team: walked every gate of Jiaduoli and Dehong from morning to night, helped log residents and vehicles and take temperatures."));
        }
        (2, 13) => {
            b.push(
                day,
                10,
                0,
                "cadre-1",
                check(
                    "jiaduoli-north",
                    "cadre-1",
                    CheckResult::Ok,
                    Some(Weather::Rain),
                    Some("guards in raincoats, masks and gloves, scanning every resident"),
                ),
            );
            b.push(
                day,
                19,
                30,
                "cadre-1",
                SuppliesDelivered {
                    delivered_by: id("cadre-1"),
                    recipient: "gate staff at every checkpoint".into(),
                    purpose: Some("drinks for the rain shift".into()),
                    items: vec![SupplyItem { item: "herbal tea".into(), quantity: 20, unit: Some("cases".into()) }],
                },
            );
            b.push(
                day,
                21,
                0,
                "cadre-1",
                note(
                    "cadre-1",
                    Some("jiaduoli"),
                    Some(Weather::Rain),
                    "Rain all day; the four gates of Jiaduoli stayed staffed. Trousers soaked, but the work felt full.",
                ),
            );
        }
        (2, 17) => {
            let items = [
                ("bread", 40, "loaves"),
                ("instant noodles", 60, "packs"),
                ("biscuits", 30, "packs"),
                ("bottled water", 10, "cases"),
                ("quilts", 10, "pieces"),
                ("padded coats", 10, "pieces"),
                ("masks", 50, "pieces"),
                ("forehead thermometer", 1, "piece"),
            ];
            b.push(
                day,
                10,
                0,
                "cadre-1",
                SuppliesDelivered {
                    delivered_by: id("cadre-1"),
                    recipient: "urban governance office".into(),
                    purpose: Some("relief for homeless people on the cold nights".into()),
                    items: items
                        .iter()
                        .map(|(item, quantity, unit)| SupplyItem {
                            item: (*item).into(),
                            quantity: *quantity,
                            unit: Some((*unit).into()),
                        })
                        .collect(),
                },
            );
        }
        (2, 18) => {
            b.push(
                day,
                8,
                30,
                "cadre-1",
                LedgerTaskAssigned {
                    task_id: id("ledger-0218"),
                    title: "Fill in the supervision ledger of the district's epidemic meetings".into(),
                    assignee_id: id("cadre-1"),
                    due_on: Some(day),
                },
            );
            b.push(
                day,
                10,
                0,
                "cadre-1",
                LedgerTaskCompleted { task_id: id("ledger-0218"), completed_by: id("cadre-1"), note: None },
            );
            b.push(
                day,
                14,
                10,
                "cadre-1",
                GateIssueRaised {
                    issue_id: id("fridge-0218"),
                    checkpoint_id: id("jiaduoli-south"),
                    raised_by: id("cadre-1"),
                    category: IssueCategory::DeliveryBlocked,
                    severity: Severity::Low,
                    summary: "A resident's new fridge was left at the gate: deliveries may not enter".into(),
                    details: None,
                },
            );
            b.push(
                day,
                14,
                15,
                "cadre-1",
                GateIssueActionTaken {
                    issue_id: id("fridge-0218"),
                    taken_by: id("cadre-1"),
                    action: "asked the property office head to send guards to help".into(),
                },
            );
            b.push(
                day,
                14,
                40,
                "cadre-1",
                GateIssueResolved {
                    issue_id: id("fridge-0218"),
                    resolved_by: id("cadre-1"),
                    resolution: "carried to the resident's flat together with two guards".into(),
                },
            );
        }
        (2, 20) => {
            b.push(
                day,
                9,
                0,
                "cadre-1",
                check(
                    "longwu-main",
                    "cadre-1",
                    CheckResult::IssueFound,
                    None,
                    Some("tricycles weaving between residents and cars"),
                ),
            );
            b.push(
                day,
                9,
                5,
                "cadre-1",
                GateIssueRaised {
                    issue_id: id("courier-0220"),
                    checkpoint_id: id("longwu-main"),
                    raised_by: id("cadre-1"),
                    category: IssueCategory::CourierCongestion,
                    severity: Severity::High,
                    summary: "Courier tricycles from four transit stations inside the compound crowd the gate".into(),
                    details: Some("Screening slows down; residents and vehicles mix with the tricycles.".into()),
                },
            );
            b.push(
                day,
                9,
                10,
                "grid-1",
                GateIssueAcknowledged { issue_id: id("courier-0220"), acknowledged_by: id("grid-1") },
            );
            b.push(
                day,
                9,
                12,
                "cadre-1",
                GateIssueAssigned {
                    issue_id: id("courier-0220"),
                    assignee_id: id("cadre-1"),
                    assigned_by: id("cadre-1"),
                },
            );
            b.push(
                day,
                9,
                20,
                "cadre-1",
                GateIssueActionTaken {
                    issue_id: id("courier-0220"),
                    taken_by: id("cadre-1"),
                    action: "told the property office to keep courier tricycles under control".into(),
                },
            );
            b.push(
                day,
                9,
                40,
                "cadre-1",
                GateIssueActionTaken {
                    issue_id: id("courier-0220"),
                    taken_by: id("cadre-1"),
                    action: "cordon tape splits the pedestrian lane from the vehicle lane".into(),
                },
            );
            b.push(
                day,
                11,
                0,
                "cadre-1",
                GateIssueEscalated {
                    issue_id: id("courier-0220"),
                    escalated_by: id("cadre-1"),
                    escalated_to: EscalationTarget::Subdistrict,
                    note: Some("subdistrict leaders came with enforcement officers and the local police".into()),
                },
            );
            b.push(
                day,
                11,
                30,
                "cadre-1",
                GateIssueActionTaken {
                    issue_id: id("courier-0220"),
                    taken_by: id("cadre-1"),
                    action:
                        "the stations were persuaded to stop sorting inside and move their pick-up outside the compound"
                            .into(),
                },
            );
            b.push(
                day,
                16,
                0,
                "grid-2",
                GateIssueRaised {
                    issue_id: id("scan-0220"),
                    checkpoint_id: id("longwu-main"),
                    raised_by: id("grid-2"),
                    category: IssueCategory::RefusedHealthCodeScan,
                    severity: Severity::Medium,
                    summary: "Elderly residents refuse to scan the health code and argue at the gate".into(),
                    details: None,
                },
            );
            b.push(
                day,
                16,
                20,
                "grid-2",
                GateIssueActionTaken {
                    issue_id: id("scan-0220"),
                    taken_by: id("grid-2"),
                    action: "property office starts issuing temporary passes to elderly residents".into(),
                },
            );
            b.push(day, 21, 0, "cadre-1", note("cadre-1", Some("longwu"), None, "Longwu's gate was the hardest today: four courier stations inside the compound. Tape, persuasion, and by noon the stations agreed to move out."));
        }
        (2, 21) => {
            b.push(
                day,
                9,
                0,
                "cadre-1",
                check(
                    "longwu-main",
                    "cadre-1",
                    CheckResult::Ok,
                    None,
                    Some("no tricycles; orderly queue for temperature and code checks"),
                ),
            );
            b.push(
                day,
                9,
                5,
                "cadre-1",
                GateIssueResolved {
                    issue_id: id("courier-0220"),
                    resolved_by: id("cadre-1"),
                    resolution: "the four transit stations moved their operations outside the compound".into(),
                },
            );
            b.push(
                day,
                9,
                10,
                "cadre-1",
                GateIssueResolutionVerified {
                    issue_id: id("courier-0220"),
                    verified_by: id("cadre-1"),
                    note: Some("follow-up check: the gate is orderly".into()),
                    check_event_id: None,
                },
            );
            b.push(
                day,
                9,
                20,
                "grid-2",
                GateIssueResolved {
                    issue_id: id("scan-0220"),
                    resolved_by: id("grid-2"),
                    resolution: "elderly residents now use temporary passes; no more quarrels".into(),
                },
            );
            b.push(
                day,
                9,
                25,
                "cadre-1",
                GateIssueResolutionVerified {
                    issue_id: id("scan-0220"),
                    verified_by: id("cadre-1"),
                    note: None,
                    check_event_id: None,
                },
            );
            b.push(
                day,
                21,
                0,
                "cadre-1",
                note(
                    "cadre-1",
                    Some("longwu"),
                    None,
                    "Back at Longwu: the chaos is gone, residents are satisfied, the guards' load is lighter.",
                ),
            );
        }
        (2, 23) => {
            for (inspection, site, findings) in [
                ("insp-0223-1", "enterprise-park", "staff temperature log kept; masks on"),
                ("insp-0223-2", "venues-east", "noodle shop reopened with distancing"),
                ("insp-0223-3", "venues-east", "barber shop: no visitor register yet"),
            ] {
                let result =
                    if inspection.ends_with('3') { InspectionResult::IssuesFound } else { InspectionResult::Passed };
                b.push(
                    day,
                    10,
                    0,
                    "cadre-1",
                    InspectionRecorded {
                        inspection_id: id(inspection),
                        site_id: id(site),
                        inspector_id: id("cadre-1"),
                        kind: InspectionKind::ReopeningCheck,
                        result,
                        findings: Some(findings.into()),
                    },
                );
            }
            b.push(
                day,
                15,
                0,
                "cadre-1",
                check(
                    "jiaduoli-north",
                    "cadre-1",
                    CheckResult::Ok,
                    None,
                    Some("every resident checked one by one; the passage logbook is full of scanned entries"),
                ),
            );
        }
        (2, 25) => {
            for (household, site) in [("hh-j-0225", "jiaduoli"), ("hh-f-0225", "feicui")] {
                b.push(
                    day,
                    9,
                    30,
                    "grid-1",
                    QuarantineReleaseNoticeDelivered {
                        household_ref: id(household),
                        site_id: id(site),
                        delivered_by: vec![id("grid-1"), id("cadre-1")],
                        masks_worn: true,
                        temperature_taken: true,
                        instructions_given: true,
                        signed: true,
                    },
                );
            }
        }
        (2, 26) => {
            let items = [
                ("walk-grid", "Walk the grid"),
                ("property-office", "Visit the property office"),
                ("every-gate", "Look at every gate"),
                ("ask-staff", "Ask the gate staff"),
                ("reopened-shops", "Check reopened shops"),
            ];
            b.push(
                day,
                9,
                0,
                "cadre-1",
                PatrolRoundStarted {
                    round_id: id("round-0226"),
                    grid_id: id("minxin-grid-3"),
                    led_by: id("cadre-1"),
                    checklist: items
                        .iter()
                        .map(|(item, label)| ChecklistItem { item_id: id(item), label: (*label).into() })
                        .collect(),
                },
            );
            for (offset, (item, _)) in items.iter().enumerate() {
                b.push(
                    day,
                    10 + offset as i8,
                    0,
                    "cadre-1",
                    PatrolRoundItemTicked {
                        round_id: id("round-0226"),
                        item_id: id(item),
                        ticked_by: id("cadre-1"),
                        evidence_event_id: None,
                        note: None,
                    },
                );
            }
            b.push(
                day,
                15,
                30,
                "cadre-1",
                PatrolRoundCompleted {
                    round_id: id("round-0226"),
                    completed_by: id("cadre-1"),
                    note: Some("the five once-overs, done".into()),
                },
            );
            b.push(
                day,
                21,
                0,
                "cadre-1",
                note(
                    "cadre-1",
                    None,
                    None,
                    "Traffic is back at rush hour and shops are reopening: epidemic control and reopening at once.",
                ),
            );
        }
        (3, 1) => {
            b.push(
                day,
                9,
                0,
                "cadre-1",
                DirectiveReceived {
                    directive_id: id("sz-0301"),
                    title: "Rules for strengthening epidemic control in residential compounds".into(),
                    issued_by: "city headquarters".into(),
                    summary: Some(
                        "study the rules, check every compound against them, look back at earlier findings".into(),
                    ),
                    requires_review: true,
                },
            );
        }
        (3, 6) => {
            b.push(day, 8, 40, "guard-1", GateIssueRaised { issue_id: id("nurse-0306"), checkpoint_id: id("jiaduoli-north"), raised_by: id("guard-1"), category: IssueCategory::UnverifiableTravelHistory, severity: Severity::Medium, summary: "A maternity nurse's 14-day travel history cannot be checked: her phone line is in a relative's name".into(), details: None });
            b.push(
                day,
                8,
                45,
                "cadre-1",
                GateIssueActionTaken {
                    issue_id: id("nurse-0306"),
                    taken_by: id("cadre-1"),
                    action: "asked her employer for a certificate that she has not left the city in 14 days".into(),
                },
            );
            b.push(
                day,
                9,
                10,
                "cadre-1",
                GateIssueResolved {
                    issue_id: id("nurse-0306"),
                    resolved_by: id("cadre-1"),
                    resolution: "the employer's certificate arrived within half an hour; she was let in".into(),
                },
            );
            b.push(
                day,
                9,
                15,
                "cadre-1",
                GateIssueResolutionVerified {
                    issue_id: id("nurse-0306"),
                    verified_by: id("cadre-1"),
                    note: None,
                    check_event_id: None,
                },
            );
        }
        (3, 9) => {
            b.push(day, 21, 0, "cadre-1", note("cadre-1", None, None, "Residents are held by temperature checks and code scans; visitors by codes and carrier travel checks. Each day the same post, each day a new start."));
        }
        _ => {}
    }
}
