/** A UUID in its canonical text form, either case. The one pattern every id check uses. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a UUID in canonical text form (either case). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}
