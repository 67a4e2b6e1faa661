// The dashboard: hash routes #/builds, #/builds/<id>, #/agents, #/queue. Every string from the
// API reaches the DOM through text nodes or attributes (el() below), never as HTML.
import { followLogs, getJson, getMetrics, postJson, queueDepthByPlatform, token, Unauthorized } from './api.js';

const REFRESH_MS = 2000;
const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'];
const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const CANCELABLE = new Set(['queued', 'running']);
const RETRYABLE = new Set(['failed', 'canceled']);
const MAX_LOG_LINES = 5000;

/** Creates an element; children are nodes or strings (always text), null/false are skipped. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const chip = (status, label = status) => el('span', { class: `chip ${status}`, 'data-status': status }, label);

/** What a running platform's agent is doing: "checking out", "building step 2 of 5", "pushing". */
function progressText(progress) {
  if (!progress) return '';
  if (progress.phase === 'preparing') return 'checking out';
  if (progress.phase === 'pushing') return 'pushing';
  if (!progress.step || !progress.steps) return 'building';
  const stage = progress.stages > 1 ? ` (stage ${progress.stage} of ${progress.stages})` : '';
  return `building step ${progress.step} of ${progress.steps}${stage}`;
}
const short = (digest) => (digest ? digest.replace(/^sha256:/, '').slice(0, 12) : '');

function duration(start, end) {
  if (!start) return '';
  const ms = (end ? Date.parse(end) : Date.now()) - Date.parse(start);
  return ms < 60_000
    ? `${(ms / 1000).toFixed(1)} s`
    : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function ago(time) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  return seconds < 90 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
}

const view = () => document.getElementById('view');

/** What the current page started (timers, streams); stopped when the route changes. */
let page = new AbortController();

function every(ms, refresh) {
  const { signal } = page;
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await refresh(signal);
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof Unauthorized) return signOut('Your token was refused; sign in again.');
      showError(error);
    }
    if (!signal.aborted) setTimeout(tick, ms);
  };
  tick();
}

function showError(error) {
  let box = document.getElementById('page-error');
  if (!box) {
    box = el('p', { id: 'page-error', class: 'error', role: 'alert' });
    view().prepend(box);
  }
  box.textContent = error instanceof Error ? error.message : String(error);
}

// --- builds list ----------------------------------------------------------------------------

function buildsPage(query) {
  const status = STATUSES.includes(query.get('status')) ? query.get('status') : '';
  const select = el(
    'select',
    {
      id: 'status-filter',
      onchange: (event) => {
        location.hash = event.target.value ? `#/builds?status=${event.target.value}` : '#/builds';
      },
    },
    el('option', { value: '' }, 'all'),
    STATUSES.map((s) => el('option', { value: s, selected: s === status }, s)),
  );
  const body = el('tbody');
  view().replaceChildren(
    el('h2', {}, 'Builds'),
    el('div', { class: 'toolbar' }, el('label', { for: 'status-filter' }, 'Status'), select),
    el(
      'table',
      { id: 'builds' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ['Build', 'Status', 'Platforms', 'Repository', 'Created', 'Duration'].map((h) =>
            el('th', { scope: 'col' }, h),
          ),
        ),
      ),
      body,
    ),
  );
  every(REFRESH_MS, async (signal) => {
    const { builds } = await getJson(`/v1/builds?limit=50${status ? `&status=${status}` : ''}`, signal);
    body.replaceChildren(
      ...builds.map((build) =>
        el(
          'tr',
          { 'data-build': build.id },
          el(
            'td',
            {},
            el('a', { href: `#/builds/${encodeURIComponent(build.id)}`, class: 'mono' }, build.id.slice(0, 8)),
          ),
          el('td', {}, chip(build.status)),
          el(
            'td',
            {},
            build.platforms.map((p) => chip(p.status, p.platform)),
          ),
          el('td', { class: 'mono' }, build.repo || 'uploaded context', build.ref ? ` @ ${build.ref}` : ''),
          el('td', {}, new Date(build.createdAt).toLocaleString()),
          el('td', {}, duration(build.startedAt, build.finishedAt)),
        ),
      ),
    );
    if (builds.length === 0) body.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No builds.')));
  });
}

// --- one build ------------------------------------------------------------------------------

function buildPage(id) {
  const summary = el('dl', { id: 'build-summary' });
  const rows = el('tbody');
  const logs = el('div', { class: 'logs' });
  const panes = new Map();
  const actionError = el('p', { id: 'action-error', class: 'error', role: 'alert' });
  // Enabled by render() in the states the farm accepts them in; a click waits for the answer.
  const act = (action) => async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    actionError.textContent = '';
    try {
      await postJson(`/v1/builds/${encodeURIComponent(id)}/${action}`);
      // A retry starts a new run: poll and follow the logs again, from a fresh page.
      if (action === 'retry') return route();
      render(await getJson(`/v1/builds/${encodeURIComponent(id)}`, page.signal));
    } catch (error) {
      if (error instanceof Unauthorized) return signOut('Your token was refused; sign in again.');
      actionError.textContent = `${action === 'cancel' ? 'Cancel' : 'Retry'} failed: ${error.message}`;
    }
  };
  const cancelButton = el(
    'button',
    { type: 'button', id: 'cancel-build', disabled: true, title: 'Stop this build', onclick: act('cancel') },
    'Cancel',
  );
  const retryButton = el(
    'button',
    {
      type: 'button',
      id: 'retry-build',
      disabled: true,
      title: 'Rebuild the platforms that did not succeed',
      onclick: act('retry'),
    },
    'Retry',
  );
  view().replaceChildren(
    el('h2', {}, 'Build ', el('span', { class: 'mono' }, id)),
    el('div', { class: 'toolbar' }, cancelButton, retryButton),
    actionError,
    summary,
    el(
      'table',
      { id: 'platforms' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ['Platform', 'Status', 'Agent', 'Emulated', 'Digest', 'Duration'].map((h) => el('th', { scope: 'col' }, h)),
        ),
      ),
      rows,
    ),
    el('h2', {}, 'Logs'),
    logs,
  );

  const pane = (platform) => {
    let pre = panes.get(platform);
    if (!pre) {
      const slug = platform.replace(/[^a-z0-9]+/gi, '-');
      pre = el('pre', {
        id: `log-${slug}`,
        'data-platform': platform,
        tabindex: 0,
        'aria-labelledby': `log-title-${slug}`,
      });
      logs.append(el('section', {}, el('h3', { id: `log-title-${slug}` }, platform), pre));
      panes.set(platform, pre);
    }
    return pre;
  };

  const render = (build) => {
    cancelButton.disabled = !CANCELABLE.has(build.status);
    retryButton.disabled = !RETRYABLE.has(build.status);
    const field = (name, ...value) => [el('dt', {}, name), el('dd', {}, ...value)];
    summary.replaceChildren(
      ...field('Status', chip(build.status)),
      // An uploaded context (farm build --upload) is built instead of a repository's commit.
      ...(build.contextDigest
        ? field('Uploaded context', el('code', { id: 'context-digest' }, build.contextDigest))
        : [
            ...field('Repository', el('span', { class: 'mono' }, build.repo), build.ref ? ` @ ${build.ref}` : ''),
            ...field('Commit', el('code', {}, build.commit)),
          ]),
      ...field('Index digest', el('code', { id: 'index-digest' }, build.digest ?? '—')),
      ...field('Tags', build.tags.length ? build.tags.map((t) => el('code', { class: 'chip-tag' }, t, ' ')) : '—'),
      ...field('Duration', duration(build.startedAt, build.finishedAt) || '—'),
      ...(build.retries ? field('Retries', String(build.retries)) : []),
      ...(build.error ? field('Error', el('span', { class: 'error' }, build.error)) : []),
    );
    rows.replaceChildren(
      ...build.platforms.map((p) =>
        el(
          'tr',
          { 'data-platform': p.platform },
          el('th', { scope: 'row' }, p.platform),
          el(
            'td',
            {},
            chip(p.status),
            p.statusReason ? el('span', { class: 'muted' }, ` ${p.statusReason}`) : null,
            p.progress ? el('span', { class: 'muted progress' }, ` ${progressText(p.progress)}`) : null,
          ),
          el('td', {}, p.agent ?? '—'),
          el('td', {}, p.emulated ? 'yes (QEMU)' : 'no'),
          el('td', {}, p.digest ? el('code', { title: p.digest }, short(p.digest)) : '—'),
          el('td', {}, duration(p.startedAt, p.finishedAt)),
        ),
      ),
    );
    for (const p of build.platforms) pane(p.platform);
  };

  let ended = false;
  every(REFRESH_MS, async (signal) => {
    if (ended) return;
    const build = await getJson(`/v1/builds/${encodeURIComponent(id)}`, signal);
    render(build);
    ended = TERMINAL.has(build.status);
  });

  followLogs(
    id,
    (name, data) => {
      if (name === 'line') {
        const pre = pane(data.platform);
        const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(document.createTextNode(`${data.line}\n`));
        while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
        if (stick) pre.scrollTop = pre.scrollHeight;
      } else if (name === 'end') {
        // One last read for digests and durations, also after the 2 s poll has stopped.
        getJson(`/v1/builds/${encodeURIComponent(id)}`, page.signal).then(render, () => {});
      }
    },
    page.signal,
  );
}

// --- agents ---------------------------------------------------------------------------------

function agentsPage() {
  const pools = el('div', { id: 'pools' });
  view().replaceChildren(el('h2', {}, 'Agents'), pools);
  every(REFRESH_MS, async (signal) => {
    const { agents } = await getJson('/v1/agents', signal);
    const byPlatform = new Map();
    for (const agent of agents) {
      for (const platform of agent.platforms) byPlatform.set(platform, [...(byPlatform.get(platform) ?? []), agent]);
    }
    const sections = [...byPlatform.keys()].sort().map((platform) => {
      const members = byPlatform.get(platform).sort((a, b) => a.name.localeCompare(b.name));
      const count = (status) => members.filter((a) => a.status === status).length;
      const slug = platform.replace(/[^a-z0-9]+/gi, '-');
      return el(
        'section',
        { 'data-pool': platform, 'aria-labelledby': `pool-${slug}` },
        el(
          'h3',
          { id: `pool-${slug}` },
          platform,
          ' ',
          el(
            'span',
            { class: 'muted' },
            `${count('online')} online, ${count('draining')} draining, ${count('offline')} offline`,
          ),
        ),
        el(
          'table',
          {},
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              ['Agent', 'Status', 'Emulated', 'Current job', 'Last seen', 'Backend'].map((h) =>
                el('th', { scope: 'col' }, h),
              ),
            ),
          ),
          el(
            'tbody',
            {},
            members.map((agent) =>
              el(
                'tr',
                { 'data-agent': agent.name },
                el('th', { scope: 'row' }, agent.name),
                el('td', {}, chip(agent.status)),
                el('td', {}, agent.emulated ? 'yes' : 'no'),
                el(
                  'td',
                  {},
                  agent.currentJobs.length
                    ? agent.currentJobs.map((job) =>
                        el(
                          'div',
                          {},
                          el(
                            'a',
                            { href: `#/builds/${encodeURIComponent(job.buildId)}`, class: 'mono' },
                            job.buildId.slice(0, 8),
                          ),
                          ` ${job.platform}`,
                        ),
                      )
                    : el('span', { class: 'muted' }, 'idle'),
                ),
                el('td', { title: agent.lastSeenAt }, ago(agent.lastSeenAt)),
                el('td', {}, agent.backend),
              ),
            ),
          ),
        ),
      );
    });
    pools.replaceChildren(
      ...(sections.length ? sections : [el('p', { class: 'muted' }, 'No agent has reported yet.')]),
    );
  });
}

// --- queue depth ----------------------------------------------------------------------------

function queuePage() {
  const body = el('tbody');
  view().replaceChildren(
    el('h2', {}, 'Queue depth'),
    el(
      'table',
      { id: 'queue' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ['Platform', 'Total', 'Waiting', 'Delayed', 'Active'].map((h) => el('th', { scope: 'col' }, h)),
        ),
      ),
      body,
    ),
  );
  every(REFRESH_MS, async (signal) => {
    const depth = queueDepthByPlatform(await getMetrics(signal));
    const platforms = [...depth.keys()].sort();
    body.replaceChildren(
      ...platforms.map((platform) => {
        const d = depth.get(platform);
        return el(
          'tr',
          { 'data-platform': platform },
          el('th', { scope: 'row' }, platform),
          el('td', {}, d.total),
          el('td', {}, d.waiting),
          el('td', {}, d.delayed),
          el('td', {}, d.active),
        );
      }),
    );
    if (platforms.length === 0)
      body.append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No platform queue yet.')));
  });
}

// --- sign-in and routing --------------------------------------------------------------------

function signOut(message = '') {
  token.clear();
  route();
  document.getElementById('sign-in-error').textContent = message;
}

function route() {
  page.abort();
  page = new AbortController();
  const signedIn = Boolean(token.get());
  document.getElementById('sign-in').hidden = signedIn;
  document.getElementById('nav').hidden = !signedIn;
  if (!signedIn) {
    view().replaceChildren();
    document.getElementById('token').focus();
    return;
  }
  const [path, search = ''] = location.hash.replace(/^#/, '').split('?');
  const query = new URLSearchParams(search);
  const build = /^\/builds\/([^/]+)$/.exec(path);
  if (build) buildPage(decodeURIComponent(build[1]));
  else if (path === '/agents') agentsPage();
  else if (path === '/queue') queuePage();
  else buildsPage(query);
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === `#${path}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

document.getElementById('sign-in').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = document.getElementById('token');
  const error = document.getElementById('sign-in-error');
  token.set(input.value.trim());
  try {
    await getJson('/v1/builds?limit=1');
    input.value = '';
    error.textContent = '';
    route();
  } catch (failure) {
    token.clear();
    error.textContent = failure instanceof Unauthorized ? 'That token was refused.' : failure.message;
  }
});
document.getElementById('sign-out').addEventListener('click', () => signOut());
window.addEventListener('hashchange', route);
route();
