//! Reading what the servers Release calls (Argo CD, alert receivers) answer.

/// The start of an answer's body: whole chunks until at least `enough` bytes (or the end,
/// or a read error), so a refusal says why without its whole body being read.
pub async fn body_head(mut resp: reqwest::Response, enough: usize) -> Vec<u8> {
    let mut head = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        head.extend_from_slice(&chunk);
        if head.len() >= enough {
            break;
        }
    }
    head
}
