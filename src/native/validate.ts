// Argument checks before anything reaches C++ (better-sqlite3's way): exact TypeError/RangeError messages
// and Node's codes (ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE), so C++ can assume
// well-formed input.

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `type string (${JSON.stringify(value.slice(0, 40))})`;
  if (typeof value === 'number' || typeof value === 'boolean') return `type ${typeof value} (${value})`;
  return `type ${typeof value}`;
}

export function typeError(code: string, message: string): TypeError {
  return Object.assign(new TypeError(message), { code });
}

export function invalidType(name: string, expected: string, value: unknown): TypeError {
  return typeError(
    'ERR_INVALID_ARG_TYPE',
    `The "${name}" argument must be ${expected}. Received ${describe(value)}`,
  );
}

export function validateInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    const error = new RangeError(
      `The value of "${name}" is out of range. It must be an integer >= ${min} and <= ${max}. Received ${value}`,
    );
    throw Object.assign(error, { code: 'ERR_OUT_OF_RANGE' });
  }
  return value;
}

export const validateFd = (name: string, value: unknown): number => validateInt(name, value, 0, 2 ** 31 - 1);

export function validateString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value);
  if (value.includes('\0')) {
    throw typeError('ERR_INVALID_ARG_VALUE', `The argument '${name}' must be a string without null bytes`);
  }
  return value;
}

export function validateBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidType(name, 'of type boolean', value);
  return value;
}

export function validateStrings(name: string, value: unknown): string[] {
  if (!Array.isArray(value)) throw invalidType(name, 'an array of strings', value);
  return value.map((item, i) => validateString(`${name}[${i}]`, item));
}
