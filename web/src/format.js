// How the history screens show figures: ratios as percentages, durations as m:ss (h:mm:ss
// from an hour), times in the browser's time zone; "—" where there is no figure.
export const pct = (x) => (x == null ? '—' : `${(x * 100).toFixed(1)}%`)
const two = (n) => String(n).padStart(2, '0')

export function duration(seconds) {
  if (seconds == null) return '—'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${two(m)}:${two(s % 60)}`
}

export const day = (d) => `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`
export const hhmm = (d) => `${two(d.getHours())}:${two(d.getMinutes())}`
export const stamp = (d) => `${day(d)} ${hhmm(d)}:${two(d.getSeconds())}`

export function midnight(daysFromToday = 0) {
  const d = new Date()
  d.setHours(0, 0, 0, 0)
  d.setDate(d.getDate() + daysFromToday)
  return d
}

// The date picker's shortcuts: today, yesterday, the last 7 days (today included).
export function rangeShortcuts(t) {
  return [
    { text: t('reports.today'), value: () => [midnight(0), midnight(1)] },
    { text: t('reports.yesterday'), value: () => [midnight(-1), midnight(0)] },
    { text: t('reports.last_7_days'), value: () => [midnight(-6), midnight(1)] },
  ]
}
