//! A transaction whose opening is abandoned half-way (the caller dropped while `BEGIN` is
//! on the wire) must not leave its connection inside a transaction the pool does not know
//! about: the next autocommit write on that connection would stay uncommitted.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use cortex_events::testing::TestDatabase;
use sqlx::{
    Connection,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};

/// A TCP proxy to `upstream` that holds back what the server answers, each read for
/// `HOLD`, while `slow` is set: a client sending then sees its answer late. `held` is
/// notified whenever it starts holding an answer back.
struct SlowAnswers {
    port: u16,
    slow: Arc<AtomicBool>,
    held: Arc<Notify>,
}

const HOLD: Duration = Duration::from_millis(400);

impl SlowAnswers {
    async fn start(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let slow = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Notify::new());
        let (flag, holding) = (slow.clone(), held.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect((upstream.0.as_str(), upstream.1)).await.unwrap();
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut client_rx, &mut server_tx).await });
                let (flag, holding) = (flag.clone(), holding.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_rx.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if flag.load(Ordering::SeqCst) {
                            holding.notify_one();
                            tokio::time::sleep(HOLD).await;
                        }
                        if client_tx.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, slow, held }
    }
}

#[tokio::test]
async fn a_begin_dropped_while_waiting_for_its_answer_leaves_no_transaction_behind() {
    let db = TestDatabase::create().await;
    sqlx::query("CREATE TABLE marks (n int)").execute(&db.pool).await.unwrap();
    let direct: PgConnectOptions = db.url.parse().unwrap();
    let proxy = SlowAnswers::start((direct.get_host().to_owned(), direct.get_port())).await;
    // One connection, so the write below runs on the connection the begin was dropped on;
    // no ping when it is taken from the pool, so the first answer held back is BEGIN's.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(direct.clone().port(proxy.port))
        .await
        .unwrap();
    pool.acquire().await.unwrap().ping().await.unwrap();
    // Back in the pool (a released connection is pinged first) before answers slow down.
    while pool.num_idle() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    proxy.slow.store(true, Ordering::SeqCst);
    tokio::select! {
        _ = cortex_events::postgres::begin(&pool) => panic!("the begin ended although BEGIN's answer was held back"),
        // Dropped the moment BEGIN has been answered and the answer is held back.
        () = proxy.held.notified() => {}
    }
    proxy.slow.store(false, Ordering::SeqCst);

    // An autocommit write on that same connection, then a look from another connection.
    sqlx::query("INSERT INTO marks VALUES (1)").execute(&pool).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM marks").fetch_one(&db.pool).await.unwrap();
    assert_eq!(seen, 1, "the autocommit write must be committed, not held in a transaction left open");
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(open, 0, "no connection may sit idle inside a transaction");

    pool.close().await;
    db.drop_database().await;
}
