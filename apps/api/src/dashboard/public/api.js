// REST v1 with the token the user signed in with (sessionStorage: gone when the tab closes).

const TOKEN_KEY = 'buildfarm.token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** Thrown for 401, so the app can ask for a token again. */
export class Unauthorized extends Error {}

function headers(extra = {}) {
  return { Authorization: `Bearer ${token.get() ?? ''}`, ...extra };
}

async function failure(response) {
  if (response.status === 401) return new Unauthorized('the token was refused');
  let message = `${response.status} ${response.statusText}`;
  try {
    message = (await response.json()).error?.message ?? message;
  } catch {
    // Not the REST error body; the status line says enough.
  }
  return new Error(message);
}

/** GET a JSON resource of REST v1. */
export async function getJson(path, signal) {
  const response = await fetch(path, { headers: headers({ Accept: 'application/json' }), signal });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** POST to a REST v1 action (cancel, retry); resolves with the JSON it answers. */
export async function postJson(path) {
  const response = await fetch(path, { method: 'POST', headers: headers({ Accept: 'application/json' }) });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** GET /metrics (Prometheus text). */
export async function getMetrics(signal) {
  const response = await fetch('/metrics', { signal });
  if (!response.ok) throw await failure(response);
  return response.text();
}

/**
 * Jobs waiting, delayed or running per platform: `buildfarm_queue_depth` summed over its
 * queues and states, as the metric's help text says.
 * @returns {Map<string, {total: number, waiting: number, delayed: number, active: number}>}
 */
export function queueDepthByPlatform(metricsText) {
  const depth = new Map();
  for (const line of metricsText.split('\n')) {
    const match = /^buildfarm_queue_depth\{(.*)\}\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries(
      [...match[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, key, value]) => [key, value]),
    );
    const value = Number(match[2]);
    if (!labels.platform || !Number.isFinite(value)) continue;
    const entry = depth.get(labels.platform) ?? { total: 0, waiting: 0, delayed: 0, active: 0 };
    entry.total += value;
    if (labels.state in entry) entry[labels.state] += value;
    depth.set(labels.platform, entry);
  }
  return depth;
}

/**
 * Follows `GET /v1/builds/{id}/logs?follow=true` (Server-Sent Events) with fetch, since
 * EventSource cannot send the Authorization header. Calls `onEvent(name, data)` per event and
 * resumes with Last-Event-ID when the stream drops before `end`. Stops when `signal` aborts.
 */
export async function followLogs(buildId, onEvent, signal) {
  let lastEventId;
  for (;;) {
    let ended = false;
    try {
      const extra = { Accept: 'text/event-stream' };
      if (lastEventId) extra['Last-Event-ID'] = lastEventId;
      const response = await fetch(`/v1/builds/${encodeURIComponent(buildId)}/logs?follow=true`, {
        headers: headers(extra),
        signal,
      });
      if (!response.ok) throw await failure(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseEvent(block);
          if (!event) continue;
          if (event.id) lastEventId = event.id;
          if (event.name === 'end') ended = true;
          onEvent(event.name, event.data);
        }
      }
    } catch (error) {
      if (signal.aborted || error instanceof Unauthorized) return;
    }
    if (ended || signal.aborted) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function parseEvent(block) {
  let name = 'message';
  let id;
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue; // keep-alive comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
  }
  if (data.length === 0) return null;
  try {
    return { name, id, data: JSON.parse(data.join('\n')) };
  } catch {
    return null;
  }
}
