/** JSON-quoted and cut short: error messages echo user input, which may be long or hold control characters. */
export function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}
