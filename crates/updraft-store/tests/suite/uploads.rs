//! Upload sessions shared by every node: find-or-create, parts that advance
//! the offset exactly once, completion, expiry.

use updraft_store::{Store, UploadPart, UploadSession};

fn candidate(id: &str, sha256: &str, size: i64, at: i64) -> UploadSession {
    UploadSession {
        upload_id: id.to_string(),
        sha256: sha256.to_string(),
        size,
        received: 0,
        complete: false,
        created_at: at,
        last_activity: at,
    }
}

fn part(start: i64, len: i64, name: &str) -> UploadPart {
    UploadPart {
        start,
        len,
        name: name.to_string(),
    }
}

pub async fn suite_upload_find_or_create<S: Store>(s: &S) {
    let sha = "a".repeat(64);
    let (first, created) = s
        .find_or_create_upload(candidate("u1", &sha, 100, 1_000), 0)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first, candidate("u1", &sha, 100, 1_000));
    assert_eq!(s.get_upload("u1").await.unwrap(), Some(first.clone()));

    // Same content: the live session is handed out, nothing inserted.
    let (again, created) = s
        .find_or_create_upload(candidate("u2", &sha, 100, 2_000), 500)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first);
    assert_eq!(s.get_upload("u2").await.unwrap(), None);

    // Another size is another file.
    let (other, created) = s
        .find_or_create_upload(candidate("u3", &sha, 101, 2_000), 500)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(other.upload_id, "u3");

    // The furthest-along live session wins.
    s.append_upload_part("u1", &part(0, 10, "u1/0-a"), 1_100)
        .await
        .unwrap()
        .unwrap();
    let (fourth, created) = s
        .find_or_create_upload(candidate("u4", &sha, 100, 1_050), 1_000)
        .await
        .unwrap();
    assert!(!created, "u1 was touched at 1100, after 1000");
    assert_eq!((fourth.upload_id.as_str(), fourth.received), ("u1", 10));

    // Expired (last activity at or before live_after): a new session.
    let (fresh, created) = s
        .find_or_create_upload(candidate("u5", &sha, 100, 9_000), 1_100)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(fresh.upload_id, "u5");

    // A complete session is not resumed either.
    let blob = "b".repeat(64);
    let mut done = candidate("u6", &blob, 5, 9_000);
    done.received = 5;
    done.complete = true;
    let (stored, created) = s.find_or_create_upload(done.clone(), 0).await.unwrap();
    assert!(created);
    assert_eq!(stored, done);
    let (next, created) = s
        .find_or_create_upload(candidate("u7", &blob, 5, 9_001), 0)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(next.upload_id, "u7");
}

pub async fn suite_upload_parts<S: Store>(s: &S) {
    let sha = "c".repeat(64);
    s.find_or_create_upload(candidate("up", &sha, 25, 1_000), 0)
        .await
        .unwrap();
    let after_first = s
        .append_upload_part("up", &part(0, 10, "up/0-x"), 1_500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (after_first.received, after_first.last_activity),
        (10, 1_500)
    );

    // The same offset again (another node lost the race), a wrong offset, a
    // part past the size, an unknown session: nothing changes.
    for (upload_id, stale) in [
        ("up", part(0, 10, "up/0-y")),
        ("up", part(5, 5, "up/5-y")),
        ("up", part(10, 16, "up/10-y")),
        ("nope", part(0, 1, "nope/0-y")),
    ] {
        assert_eq!(
            s.append_upload_part(upload_id, &stale, 1_600)
                .await
                .unwrap(),
            None,
            "{stale:?}"
        );
    }
    assert_eq!(s.get_upload("up").await.unwrap().unwrap(), after_first);
    assert_eq!(
        s.complete_upload("up", 1_700).await.unwrap(),
        None,
        "not fully received"
    );

    let second = s
        .append_upload_part("up", &part(10, 15, "up/10-z"), 1_400)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.received, 25);
    assert_eq!(second.last_activity, 1_500, "activity never goes back");
    assert_eq!(
        s.list_upload_parts("up").await.unwrap(),
        vec![part(0, 10, "up/0-x"), part(10, 15, "up/10-z")]
    );

    let parts = s.complete_upload("up", 2_000).await.unwrap().unwrap();
    assert_eq!(parts, vec![part(0, 10, "up/0-x"), part(10, 15, "up/10-z")]);
    let done = s.get_upload("up").await.unwrap().unwrap();
    assert!(done.complete);
    assert_eq!((done.received, done.last_activity), (25, 2_000));
    assert!(s.list_upload_parts("up").await.unwrap().is_empty());
    assert_eq!(s.complete_upload("up", 2_100).await.unwrap(), None);
    assert_eq!(
        s.append_upload_part("up", &part(25, 1, "up/25-q"), 2_200)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.get_upload("up").await.unwrap().unwrap(), done);
}

/// Two writers racing for one offset: exactly one advances it.
pub async fn suite_upload_racing_appends<S: Store>(s: &S) {
    let sha = "d".repeat(64);
    s.find_or_create_upload(candidate("race", &sha, 8, 1), 0)
        .await
        .unwrap();
    for round in 0..4_i64 {
        let a = part(round * 2, 2, &format!("race/{}-a", round * 2));
        let b = part(round * 2, 2, &format!("race/{}-b", round * 2));
        let (won_a, won_b) = tokio::join!(
            s.append_upload_part("race", &a, 10),
            s.append_upload_part("race", &b, 10)
        );
        let winners = [won_a.unwrap(), won_b.unwrap()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        assert_eq!(winners.len(), 1, "round {round}");
        assert_eq!(winners[0].received, round * 2 + 2);
    }
    let parts = s.list_upload_parts("race").await.unwrap();
    assert_eq!(
        parts.iter().map(|p| (p.start, p.len)).collect::<Vec<_>>(),
        vec![(0, 2), (2, 2), (4, 2), (6, 2)]
    );
    assert_eq!(s.get_upload("race").await.unwrap().unwrap().received, 8);
}

pub async fn suite_upload_expiry_and_delete<S: Store>(s: &S) {
    let sha = "e".repeat(64);
    for (id, at) in [("old-2", 200), ("old-1", 100), ("new", 900)] {
        s.find_or_create_upload(candidate(id, &sha, 10 + at, at), 0)
            .await
            .unwrap();
    }
    s.append_upload_part("old-1", &part(0, 3, "old-1/0-a"), 150)
        .await
        .unwrap()
        .unwrap();
    let ids = |sessions: Vec<UploadSession>| {
        sessions
            .into_iter()
            .map(|s| s.upload_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s.expired_uploads(200, 10).await.unwrap()),
        vec!["old-1", "old-2"],
        "oldest activity first, the boundary included"
    );
    assert_eq!(ids(s.expired_uploads(200, 1).await.unwrap()), vec!["old-1"]);
    assert!(s.expired_uploads(99, 10).await.unwrap().is_empty());

    assert_eq!(
        s.delete_upload("old-1").await.unwrap(),
        vec![part(0, 3, "old-1/0-a")]
    );
    assert_eq!(s.get_upload("old-1").await.unwrap(), None);
    assert!(s.list_upload_parts("old-1").await.unwrap().is_empty());
    assert!(s.delete_upload("old-1").await.unwrap().is_empty());
    assert_eq!(
        ids(s.expired_uploads(1_000, 10).await.unwrap()),
        vec!["old-2", "new"]
    );
}
