// The playground: a prompt and the sampling controls of POST /generate,
// whose continuation streams in as Server-Sent Events read from the fetch
// body. Stop aborts the fetch; the server notices the closed connection at
// its next write and frees the engine slot.

import {$, setText} from './dom.js';
import {errorFrom, describe} from './api.js';

// parseEvent reads one Server-Sent Event block ("event: x\ndata: y").
export function parseEvent(block) {
  let event = '';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return {event, data: data.join('\n')};
}

function numberField(id, parse) {
  const v = $(id).value.trim();
  return v === '' ? undefined : parse(v);
}

// Playground wires the playground view to client.
export class Playground {
  constructor(client) {
    this.client = client;
    this.controller = null;
    this.form = $('gen-form');
    this.startButton = $('gen-start');
    this.stopButton = $('gen-stop-button');
    this.echo = $('gen-echo');
    this.text = $('gen-text');
    this.form.addEventListener('submit', (ev) => { ev.preventDefault(); this.run(); });
    this.stopButton.addEventListener('click', () => this.stop());
  }

  // stop cancels the running generation, if any.
  stop() {
    if (this.controller) this.controller.abort();
  }

  request() {
    const body = {
      prompt: $('gen-prompt').value,
      max_new_tokens: numberField('gen-max-new-tokens', (v) => parseInt(v, 10)),
      temperature: numberField('gen-temperature', Number),
      top_k: numberField('gen-top-k', (v) => parseInt(v, 10)),
      top_p: numberField('gen-top-p', Number),
      seed: numberField('gen-seed', (v) => parseInt(v, 10)),
      stream: true,
    };
    const stops = $('gen-stop').value.split('\n').filter((s) => s !== '');
    if (stops.length) body.stop = stops;
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    return body;
  }

  status(s) { setText($('gen-status'), s); }

  async run() {
    if (this.controller) return;
    const body = this.request();
    setText($('gen-error'), '');
    setText(this.echo, body.prompt);
    setText(this.text, '');
    setText($('gen-tokens'), '0');
    setText($('gen-rate'), '–');
    this.status('waiting');
    this.controller = new AbortController();
    this.startButton.disabled = true;
    this.stopButton.disabled = false;
    const started = performance.now();
    let chunks = 0;
    let finished = false;
    const rate = (n) => {
      const secs = (performance.now() - started) / 1000;
      setText($('gen-rate'), secs > 0 ? (n / secs).toFixed(1) : '–');
    };
    const handle = (ev) => {
      const data = ev.data ? JSON.parse(ev.data) : {};
      if (ev.event === '') {
        // Appended as a text node: model output is never parsed as HTML.
        this.text.append(String(data.text || ''));
        chunks++;
        setText($('gen-tokens'), String(chunks));
        rate(chunks);
      } else if (ev.event === 'done') {
        finished = true;
        setText($('gen-tokens'), String(data.completion_tokens));
        rate(data.completion_tokens);
        this.status('done: ' + data.finish_reason);
      } else if (ev.event === 'error') {
        finished = true;
        this.status('error');
        setText($('gen-error'), describe(data.detail) || 'generation failed');
      }
    };
    try {
      const resp = await this.client.request('/generate', {
        method: 'POST', json: body, signal: this.controller.signal, headers: {Accept: 'text/event-stream'},
      });
      if (!resp.ok) throw await errorFrom(resp);
      this.status('streaming');
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      while (!finished) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += decoder.decode(value, {stream: true}).replace(/\r\n?/g, '\n');
        let i;
        while (!finished && (i = buf.indexOf('\n\n')) >= 0) {
          handle(parseEvent(buf.slice(0, i)));
          buf = buf.slice(i + 2);
        }
      }
      // The last event ends the run; the connection may close later.
      if (finished) reader.cancel().catch(() => {});
      if (!finished) this.status('ended early');
    } catch (e) {
      if (e.name === 'AbortError') {
        this.status('stopped');
      } else {
        this.status('error');
        setText($('gen-error'), e.message);
      }
    } finally {
      this.controller = null;
      this.startButton.disabled = false;
      this.stopButton.disabled = true;
    }
  }
}
