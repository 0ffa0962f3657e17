// A horizontal bar chart of each variant's median ratio to the bare route, as plain SVG
// (no chart library: a few rects and texts).
const escape = (text) => String(text).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])

export function renderChart (rows) {
  // Wide enough for the longest variant name (12 px text: about 7 px a character at most).
  const labelWidth = Math.max(250, 20 + 7 * Math.max(0, ...rows.map((r) => r.variant.name.length)))
  const barWidth = 420
  const valueWidth = 170
  const rowHeight = 26
  const top = 40
  const width = labelWidth + barWidth + valueWidth
  const height = top + rows.length * rowHeight + 30
  const scaleMax = Math.max(1.1, ...rows.map((r) => r.ratio))
  const x = (ratio) => labelWidth + (Math.min(ratio, scaleMax) / scaleMax) * barWidth
  const colour = (row) => row.variant.name === 'bare' ? '#8a8a8a' : row.variant.peer === true ? '#e08a2c' : '#2f6fb3'
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${labelWidth}" y="18" font-size="14" font-weight="bold">Requests/s relative to the bare route (median of rounds)</text>`,
    `<text x="${labelWidth}" y="32" fill="#555">blue: fastify-multiauth · orange: peers · grey: bare</text>`
  ]
  for (const mark of [0.85, 0.9, 1]) {
    parts.push(`<line x1="${x(mark).toFixed(1)}" y1="${top - 4}" x2="${x(mark).toFixed(1)}" y2="${height - 24}" stroke="#bbb" stroke-dasharray="3,3"/>`)
    parts.push(`<text x="${x(mark).toFixed(1)}" y="${height - 10}" text-anchor="middle" fill="#555">${mark.toFixed(2)}</text>`)
  }
  rows.forEach((row, i) => {
    const y = top + i * rowHeight
    parts.push(`<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${escape(row.variant.name)}</text>`)
    parts.push(`<rect x="${labelWidth}" y="${y + 4}" width="${Math.max(1, x(row.ratio) - labelWidth).toFixed(1)}" height="${rowHeight - 8}" fill="${colour(row)}"/>`)
    parts.push(`<text x="${(x(row.ratio) + 6).toFixed(1)}" y="${y + 16}">${row.ratio.toFixed(2)}× · ${escape(Math.round(row.rps).toLocaleString('en-US'))} req/s</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
