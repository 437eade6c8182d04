/** Decimal digits only: no sign, no exponent, no fraction, at most 16 digits (2^53 has 16). */
const POSITIVE_INTEGER = /^[1-9][0-9]{0,15}$/;

/**
 * A tree size (or count) from a query parameter: a positive safe integer written in decimal, or
 * undefined when the parameter is missing, repeated or anything else.
 */
export function parseTreeSize(value: unknown): number | undefined {
  if (typeof value !== 'string' || !POSITIVE_INTEGER.test(value)) return undefined;
  const size = Number(value);
  return Number.isSafeInteger(size) ? size : undefined;
}
