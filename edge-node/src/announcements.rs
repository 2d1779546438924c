//! The room's announcements as the node shows them: from the cloud's `announcements` snapshot,
//! without those whose expiry has passed on the node's clock, urgent first.
//!
//! ## Expiry and the node's clock
//!
//! A node may run for days without the uplink, so it hides an expired announcement itself
//! rather than waiting for the next snapshot. Its wall clock decides when it is synchronised.
//! When it is not (a Pi that booted without network or RTC may believe it is 1970), the node
//! takes the later of its wall clock and the newest publication time in the snapshot: the cloud
//! published that announcement, so the real time is at least that. A clock stuck in the past
//! therefore cannot bring back announcements that expired before the newest one was published,
//! and nothing is hidden early unless the unsynchronised clock runs ahead.

use chrono::{DateTime, Utc};
use nimbus_core::snapshot::{Announcement, AnnouncementsSnapshot};
use rusqlite::Connection;

use crate::clock::Now;
use crate::timetable;

/// The announcements the node shows at `now`, urgent first then newest first; none when the
/// node holds no announcements snapshot (or an unreadable one, which is logged).
pub fn current(c: &Connection, now: &Now) -> crate::Result<Vec<Announcement>> {
    let Some(raw) = timetable::raw_snapshot(c, "announcements")? else {
        return Ok(Vec::new());
    };
    let snapshot = match serde_json::from_str::<AnnouncementsSnapshot>(&raw) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "announcements snapshot unreadable; showing none");
            return Ok(Vec::new());
        }
    };
    Ok(visible(snapshot.items, now))
}

/// What the node believes the time is for expiry (see the module docs).
pub fn effective_now(items: &[Announcement], now: &Now) -> DateTime<Utc> {
    if now.synced {
        return now.utc;
    }
    items.iter().map(|a| a.published_at).max().map_or(now.utc, |newest| newest.max(now.utc))
}

/// `items` without the expired ones, sorted for display.
pub fn visible(items: Vec<Announcement>, now: &Now) -> Vec<Announcement> {
    let at = effective_now(&items, now);
    let mut shown: Vec<Announcement> = items.into_iter().filter(|a| a.current(at)).collect();
    Announcement::sort(&mut shown);
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use chrono::{FixedOffset, NaiveDate, TimeDelta};

    fn item(id: &str, priority: &str, published: DateTime<Utc>, expires: Option<DateTime<Utc>>) -> Announcement {
        Announcement {
            announcement_id: id.into(),
            title: id.into(),
            body: String::new(),
            published_at: published,
            course_ids: vec![],
            user_ids: vec![],
            roles: vec![],
            priority: priority.into(),
            expires_at: expires,
        }
    }

    fn clock() -> ManualClock {
        let local = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap().and_hms_opt(10, 0, 0).unwrap();
        ManualClock::at_local(local, FixedOffset::east_opt(0).unwrap())
    }

    #[test]
    fn an_announcement_is_hidden_once_its_expiry_passes_on_a_synchronised_clock() {
        let c = clock();
        let now = c.now().utc;
        let items = vec![
            item("later", "normal", now - TimeDelta::hours(1), Some(now + TimeDelta::minutes(5))),
            item("past", "urgent", now - TimeDelta::hours(2), Some(now - TimeDelta::seconds(1))),
            item("never", "low", now - TimeDelta::hours(3), None),
        ];
        let ids = |v: Vec<Announcement>| v.into_iter().map(|a| a.announcement_id).collect::<Vec<_>>();
        assert_eq!(ids(visible(items.clone(), &c.now())), ["later", "never"]);
        c.advance(std::time::Duration::from_secs(301));
        assert_eq!(ids(visible(items, &c.now())), ["never"]);
    }

    #[test]
    fn an_unsynchronised_clock_behind_the_cloud_cannot_bring_back_expired_announcements() {
        let c = clock();
        let real = c.now().utc;
        let items = vec![
            item("fresh", "normal", real - TimeDelta::minutes(1), Some(real + TimeDelta::hours(1))),
            item("expired", "urgent", real - TimeDelta::days(2), Some(real - TimeDelta::days(1))),
        ];
        // The Pi rebooted without network: its clock says 2026-01-01.
        c.set_wall_local(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap());
        c.set_synced(false);
        let shown = visible(items, &c.now());
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].announcement_id, "fresh");
    }

    #[test]
    fn urgent_announcements_come_first_then_the_newest() {
        let c = clock();
        let now = c.now().utc;
        let items = vec![
            item("old-normal", "normal", now - TimeDelta::hours(3), None),
            item("new-normal", "normal", now - TimeDelta::hours(1), None),
            item("old-urgent", "urgent", now - TimeDelta::hours(5), None),
            item("high", "high", now - TimeDelta::hours(9), None),
        ];
        let order: Vec<String> = visible(items, &c.now()).into_iter().map(|a| a.announcement_id).collect();
        assert_eq!(order, ["old-urgent", "high", "new-normal", "old-normal"]);
    }
}
