//! The throwaway servers start and answer like the real thing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use sqlx::Connection;

#[tokio::test]
async fn each_postgres_database_is_new_and_writable() {
    let first = updraft_testkit::postgres_database().await;
    let second = updraft_testkit::postgres_database().await;
    assert_ne!(first, second);
    let mut conn = sqlx::PgConnection::connect(&first).await.unwrap();
    sqlx::query("CREATE TABLE t (v BIGINT)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (42)")
        .execute(&mut conn)
        .await
        .unwrap();
    let v: i64 = sqlx::query_scalar("SELECT v FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, 42);
    let mut other = sqlx::PgConnection::connect(&second).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut other)
    .await
    .unwrap();
    assert_eq!(tables, 0, "a new database starts empty");
}

#[tokio::test]
async fn an_s3_bucket_takes_objects_and_keeps_them_private() {
    let bucket = updraft_testkit::s3_bucket().await;
    let other = updraft_testkit::s3_bucket().await;
    assert_ne!(bucket.bucket, other.bucket);
    assert_eq!(bucket.url, format!("s3://{}/bundles", bucket.bucket));
    let client = reqwest::Client::new();
    let key = format!("{}/{}/hello.txt", bucket.endpoint, bucket.bucket);
    let put = client.put(&key).body("hello").send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    // Like S3, objects are private: an unsigned read is refused.
    let anonymous = client.get(&key).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 403);
    let missing_bucket = client
        .put(format!("{}/no-such-bucket-here/x", bucket.endpoint))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(missing_bucket.status().as_u16(), 404);
}
