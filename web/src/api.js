// The REST API and the CTI event stream, as the signed-in user. The token lives in
// sessionStorage: closing the tab signs out; the language choice is remembered apart.
const BASE = '/api/v1'

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`)
    this.status = status
    this.body = body
    // field errors as the server names them ({field, message}), for forms to show
    this.fields = Object.fromEntries((body?.errors || []).map((e) => [e.field, e.message]))
  }
}

export function token() {
  return sessionStorage.getItem('hotline.token')
}

export function session() {
  const raw = sessionStorage.getItem('hotline.me')
  return raw ? JSON.parse(raw) : null
}

// A Blob body (a file) is sent as it is, with its own type; anything else as JSON.
async function request(method, path, body, accept) {
  const headers = { Accept: accept }
  if (token()) headers.Authorization = `Bearer ${token()}`
  const raw = body instanceof Blob
  if (body !== undefined) headers['Content-Type'] = raw ? body.type || 'application/octet-stream' : 'application/json'
  const r = await fetch(BASE + path, {
    method,
    headers,
    body: body === undefined || raw ? body : JSON.stringify(body),
  })
  if (!r.ok) {
    const data = r.headers.get('content-type')?.includes('json') ? await r.json() : null
    if (r.status === 401 && path !== '/auth/login') signOut()
    throw new ApiError(r.status, data)
  }
  return r
}

export async function api(method, path, body) {
  const r = await request(method, path, body, 'application/json')
  // 204 (a DELETE) has no body, though it may still name JSON as its type
  return r.status !== 204 && r.headers.get('content-type')?.includes('json') ? await r.json() : null
}

export async function signIn(tenant, username, password) {
  const me = await api('POST', '/auth/login', { tenant, username, password })
  sessionStorage.setItem('hotline.token', me.token)
  sessionStorage.setItem('hotline.me', JSON.stringify({ ...me, token: undefined }))
  return me
}

export function signOut() {
  sessionStorage.removeItem('hotline.token')
  sessionStorage.removeItem('hotline.me')
  if (location.hash !== '#/login') location.hash = '#/login'
}

// The CTI stream: calls onMessage with each JSON message; reconnects after a drop.
export function stream(onMessage) {
  let ws = null
  let closed = false
  const open = () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    ws = new WebSocket(`${scheme}://${location.host}${BASE}/events?token=${token()}`)
    ws.onmessage = (m) => onMessage(JSON.parse(m.data))
    ws.onclose = () => {
      if (!closed && token()) setTimeout(open, 1000)
    }
  }
  open()
  return () => {
    closed = true
    ws?.close()
  }
}

// A file from the API as the signed-in user (exports, recordings, prompts' audio) for a
// Blob URL, as an <audio> or a link cannot send the bearer token themselves: {blob,
// filename}, the file name as the server gives it. Errors throw ApiError as api() does.
export async function fetchFile(path) {
  const r = await request('GET', path, undefined, '*/*')
  const name = /filename="?([^";]+)"?/.exec(r.headers.get('content-disposition') || '')
  return { blob: await r.blob(), filename: name ? name[1] : null }
}

// Saves a file from the API under the server's name (a plain link could not send the token).
export async function download(path) {
  const { blob, filename } = await fetchFile(path)
  const url = URL.createObjectURL(blob)
  const a = Object.assign(document.createElement('a'), { href: url, download: filename || 'download' })
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10000)
  return filename
}
