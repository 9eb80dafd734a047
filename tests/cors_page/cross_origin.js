// A page on another origin than the gateway's, calling it as a browser client would:
// a fetch with an API key in a header, then a summary stream through EventSource (which
// cannot send headers: the key is traded for a stream token first). Each outcome is
// written into the page, as an element whose id names it, for the test to read.
const params = new URLSearchParams(window.location.search);
const gateway = params.get('gateway');
const key = params.get('key');

function show(id, text) {
  const element = document.createElement('p');
  element.id = id;
  element.textContent = text;
  document.body.append(element);
}

async function callWithKey() {
  try {
    const response = await fetch(`${gateway}/v1/classify`, {
      method: 'POST',
      headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: 'a cross-origin call' }),
    });
    show('fetch-status', String(response.status));
    show('ratelimit', response.headers.get('RateLimit') ?? 'not readable');
    show('request-id', response.headers.get('X-Request-ID') ?? 'not readable');
  } catch (error) {
    show('fetch-status', `failed: ${error.message}`);
  }
}

async function streamSummary() {
  let token;
  try {
    const response = await fetch(`${gateway}/v1/summarize/stream-token`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}` },
    });
    token = (await response.json()).stream_token;
  } catch (error) {
    show('stream', `no stream token: ${error.message}`);
    return;
  }
  const query = new URLSearchParams({ text: 'A text to sum up, sent from another origin.' });
  query.set('stream_token', token);
  const source = new EventSource(`${gateway}/v1/summarize/stream?${query}`);
  let tokens = 0;
  source.addEventListener('token', () => {
    tokens += 1;
  });
  const end = (how) => {
    source.close();
    show('stream', `${tokens} tokens, then ${how}`);
  };
  source.addEventListener('done', () => end('done'));
  // The gateway's own error event carries the envelope; a failed connection has no data.
  source.addEventListener('error', (event) => {
    end(event.data ? `error event ${JSON.parse(event.data).error.code}` : 'connection failed');
  });
}

callWithKey().then(streamSummary);
