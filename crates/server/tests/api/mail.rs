//! The mailer's two transports: the outbox table, and SMTP spoken to a
//! minimal SMTP server on a loopback port (a real SMTP conversation over
//! TCP).

use secrecy::SecretString;
use switchyard::mail::{Email, MailError, MailSettings, MailTransport, Mailer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::helpers::TestDatabase;

async fn migrated_pool(database: &TestDatabase) -> sqlx::PgPool {
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    switchyard::startup::MIGRATOR.run(&pool).await.unwrap();
    pool
}

fn settings(transport: MailTransport, smtp_url: Option<String>) -> MailSettings {
    MailSettings {
        transport,
        smtp_url: smtp_url.map(SecretString::from),
        from: "switchyard <no-reply@example.com>".into(),
    }
}

#[tokio::test]
async fn the_outbox_stores_one_row_per_message_and_rejects_bad_recipients() {
    let database = TestDatabase::create().await;
    let pool = migrated_pool(&database).await;
    let mailer = Mailer::new(&settings(MailTransport::Outbox, None), pool.clone()).unwrap();
    mailer.send(&Email::otp_code("a@example.com", "123456", 10)).await.unwrap();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT recipient, subject, body FROM email_outbox").fetch_all(&pool).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "a@example.com");
    assert!(rows[0].2.contains("123456") && rows[0].2.contains("10 minutes"));

    let err = mailer.send(&Email::password_reset("not an address", "tok", 30)).await.unwrap_err();
    assert!(matches!(err, MailError::InvalidAddress("recipient")));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM email_outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 1, "nothing stored for a bad recipient");
    pool.close().await;
}

/// Accepts one SMTP session and returns the first message's DATA.
async fn smtp_sink(listener: TcpListener) -> String {
    let (socket, _) = listener.accept().await.unwrap();
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
    let mut data = String::new();
    let mut in_data = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        if in_data {
            if line == "." {
                // The pooled transport keeps the connection for reuse
                // instead of quitting: one message is all we wait for.
                write.write_all(b"250 queued\r\n").await.unwrap();
                break;
            } else {
                data.push_str(&line);
                data.push('\n');
            }
            continue;
        }
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink\r\n",
            "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            }
            _ => b"250 ok\r\n",
        };
        write.write_all(reply).await.unwrap();
    }
    data
}

#[tokio::test]
async fn smtp_delivers_the_rendered_message() {
    let database = TestDatabase::create().await;
    let pool = migrated_pool(&database).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = tokio::spawn(smtp_sink(listener));
    let mailer =
        Mailer::new(&settings(MailTransport::Smtp, Some(format!("smtp://127.0.0.1:{port}"))), pool.clone()).unwrap();
    mailer.send(&Email::password_reset("b@example.com", "reset-token-value", 30)).await.unwrap();
    let data = tokio::time::timeout(std::time::Duration::from_secs(10), sink).await.unwrap().unwrap();
    assert!(data.contains("Subject: Reset your password"), "{data}");
    assert!(data.contains("reset-token-value"), "{data}");
    assert!(data.contains("b@example.com"));
    pool.close().await;
}

#[tokio::test]
async fn a_bad_sender_or_smtp_url_is_refused_up_front() {
    let database = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let mut bad_from = settings(MailTransport::Outbox, None);
    bad_from.from = "nope".into();
    assert!(matches!(Mailer::new(&bad_from, pool.clone()), Err(MailError::InvalidAddress("MAIL_FROM"))));
    assert!(Mailer::new(&settings(MailTransport::Smtp, None), pool.clone()).is_err());
    pool.close().await;
}
