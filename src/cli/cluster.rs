//! `runnel cluster describe`: the metadata quorum and the brokers, as
//! `kafka-metadata-quorum describe --status` and `--replication` print them.

use super::{CliError, ConnectArgs};
use crate::client::{Admin, ClusterDescription, QuorumDescription, QuorumReplica};
use crate::env::Env;
use std::io::Write;

/// The cluster commands.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Describe the metadata quorum (like kafka-metadata-quorum describe): `--status` (the
    /// default) prints the leader, epoch, high watermark, lag, voters and observers;
    /// `--replication` prints each replica's log end offset, lag and fetch times.
    Describe {
        /// Print the quorum's status.
        #[arg(long, conflicts_with = "replication")]
        status: bool,
        /// Print each replica's progress.
        #[arg(long)]
        replication: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Runs a cluster command, writing its output to `out`.
pub async fn run(command: ClusterCommand, env: Env, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        ClusterCommand::Describe {
            status: _,
            replication,
            connect,
        } => {
            let admin = Admin::new(env.clone(), connect.client_config())
                .map_err(|e| CliError::client(e, None, &connect))?;
            let quorum = admin
                .describe_quorum()
                .await
                .map_err(|e| CliError::client(e, None, &connect))?;
            if replication {
                write!(out, "{}", replication_text(&quorum))?;
            } else {
                let cluster = admin
                    .describe_cluster()
                    .await
                    .map_err(|e| CliError::client(e, None, &connect))?;
                write!(out, "{}", status_text(&cluster, &quorum))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn ids(v: &[QuorumReplica]) -> String {
    let ids: Vec<String> = v.iter().map(|r| r.id.to_string()).collect();
    format!("[{}]", ids.join(","))
}

/// The leader's own entry (it always lists itself among the voters).
fn leader_of(q: &QuorumDescription) -> Option<&QuorumReplica> {
    q.voters.iter().find(|r| r.id == q.leader_id)
}

/// `describe --status`, with Kafka's labels and its lag figures: MaxFollowerLag is the
/// largest gap between the leader's log end and a voter's; MaxFollowerLagTimeMs how long
/// ago the least recently caught-up voter was caught up, as the leader saw it.
pub fn status_text(cluster: &ClusterDescription, q: &QuorumDescription) -> String {
    let leader = leader_of(q);
    let leader_end = leader.map_or(q.high_watermark, |l| l.log_end_offset);
    let followers = q.voters.iter().filter(|r| r.id != q.leader_id);
    let max_lag = followers
        .clone()
        .map(|r| (leader_end - r.log_end_offset).max(0))
        .max()
        .unwrap_or(0);
    let max_lag_time = match leader {
        Some(l) => followers
            .map(|r| {
                if r.last_caught_up_ms < 0 {
                    -1
                } else {
                    (l.last_caught_up_ms - r.last_caught_up_ms).max(0)
                }
            })
            .max()
            .unwrap_or(0),
        None => -1,
    };
    format!(
        "ClusterId:              {}\n\
         LeaderId:               {}\n\
         LeaderEpoch:            {}\n\
         HighWatermark:          {}\n\
         MaxFollowerLag:         {}\n\
         MaxFollowerLagTimeMs:   {}\n\
         CurrentVoters:          {}\n\
         CurrentObservers:       {}\n",
        cluster.cluster_id,
        q.leader_id,
        q.leader_epoch,
        q.high_watermark,
        max_lag,
        max_lag_time,
        ids(&q.voters),
        ids(&q.observers),
    )
}

/// `describe --replication`: one row per replica, the leader first, then the other voters
/// and the observers, each with its lag behind the leader's log end.
pub fn replication_text(q: &QuorumDescription) -> String {
    let leader_end = leader_of(q).map_or(q.high_watermark, |l| l.log_end_offset);
    let mut rows = vec![[
        "NodeId".to_string(),
        "LogEndOffset".into(),
        "Lag".into(),
        "LastFetchTimestamp".into(),
        "LastCaughtUpTimestamp".into(),
        "Status".into(),
    ]];
    let row = |r: &QuorumReplica, status: &str| {
        [
            r.id.to_string(),
            r.log_end_offset.to_string(),
            if r.log_end_offset < 0 {
                "-1".to_string()
            } else {
                (leader_end - r.log_end_offset).max(0).to_string()
            },
            r.last_fetch_ms.to_string(),
            r.last_caught_up_ms.to_string(),
            status.to_string(),
        ]
    };
    if let Some(l) = leader_of(q) {
        rows.push(row(l, "Leader"));
    }
    for r in q.voters.iter().filter(|r| r.id != q.leader_id) {
        rows.push(row(r, "Follower"));
    }
    for r in &q.observers {
        rows.push(row(r, "Observer"));
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        s.push_str(cells.join("  ").trim_end());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quorum() -> QuorumDescription {
        let r = |id, end, caught| QuorumReplica {
            id,
            log_end_offset: end,
            last_fetch_ms: 1_000,
            last_caught_up_ms: caught,
        };
        QuorumDescription {
            leader_id: 2,
            leader_epoch: 7,
            high_watermark: 40,
            voters: vec![r(1, 38, 900), r(2, 42, 1_000), r(3, -1, -1)],
            observers: vec![r(4, 42, 1_000)],
        }
    }

    #[test]
    fn status_has_kafkas_labels_and_lag() {
        let cluster = ClusterDescription {
            cluster_id: "abc".into(),
            controller_id: Some(2),
            brokers: vec![],
        };
        let text = status_text(&cluster, &quorum());
        assert!(text.starts_with("ClusterId:              abc\nLeaderId:               2\n"));
        assert!(text.contains("LeaderEpoch:            7\n"));
        assert!(text.contains("HighWatermark:          40\n"));
        // Voter 3 never fetched: its lag is the whole log, its lag time unknown.
        assert!(text.contains("MaxFollowerLag:         43\n"), "{text}");
        assert!(text.contains("MaxFollowerLagTimeMs:   100\n"), "{text}");
        assert!(text.contains("CurrentVoters:          [1,2,3]\n"));
        assert!(text.contains("CurrentObservers:       [4]\n"));
    }

    #[test]
    fn replication_lists_the_leader_first() {
        let text = replication_text(&quorum());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NodeId  LogEndOffset  Lag"));
        assert!(lines[1].starts_with("2 ") && lines[1].ends_with("Leader"));
        assert!(lines[2].starts_with("1 ") && lines[2].contains(" 4 "));
        assert!(lines[3].starts_with("3 ") && lines[3].ends_with("Follower"));
        assert!(lines[4].starts_with("4 ") && lines[4].ends_with("Observer"));
    }
}
