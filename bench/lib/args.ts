/** A command-line option that must be a positive whole number. */
export function positive(value: string | undefined, name: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) throw new Error(`${name} must be a positive whole number`);
  return number;
}
