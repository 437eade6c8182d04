import { convertUnit, roundLike, ucumCodeOf } from './ucum-units';

describe('UCUM units', () => {
  it.each<[string, string]>([
    ['mg/dL', 'mg/dL'],
    ['MG/DL', 'mg/dL'],
    [' mmol/l ', 'mmol/L'],
    ['µmol/L', 'umol/L'],
    ['Lbs', '[lb_av]'],
    ['inches', '[in_i]'],
    ['°F', '[degF]'],
    ['deg C', 'Cel'],
    ['beats/min', '/min'],
    ['mm Hg', 'mm[Hg]'],
    ['percent', '%'],
    ['K/uL', '10*3/uL'],
    ['mL/min/1.73m2', 'mL/min/{1.73_m2}'],
    ['kg/m2', 'kg/m2'],
    ['years', 'a'],
  ])('%j is UCUM %s', (unit, code) => {
    expect(ucumCodeOf(unit)).toBe(code);
  });

  it('knows extra units a profile adds, and not unknown ones', () => {
    expect(ucumCodeOf('mg%', new Map([['mg%', 'mg/dL']]))).toBe('mg/dL');
    expect(ucumCodeOf('scoops')).toBeUndefined();
  });

  it.each<[number, string, string, number | undefined, number]>([
    [98.6, '[degF]', 'Cel', undefined, 37],
    [37, 'Cel', '[degF]', undefined, 98.6],
    [0, 'Cel', 'K', undefined, 273],
    [154, '[lb_av]', 'kg', undefined, 69.9],
    [70, 'kg', '[lb_av]', undefined, 154],
    [70, '[in_i]', 'cm', undefined, 178],
    [1.75, 'm', '[in_i]', undefined, 68.9],
    [120, 'mm[Hg]', 'kPa', undefined, 16],
    [16, 'kPa', 'mm[Hg]', undefined, 120],
    [13.5, 'g/dL', 'g/L', undefined, 135],
    [900, 'umol/L', 'mmol/L', undefined, 0.9],
    [99, 'mg/dL', 'mmol/L', 180.156, 5.5],
    [5.5, 'mmol/L', 'mg/dL', 180.156, 99.1],
    [200, 'mg/dL', 'mmol/L', 386.65, 5.17],
  ])('%d %s -> %s (molar mass %s) = %d', (value, from, to, molarMass, expected) => {
    const converted = convertUnit(value, from, to, molarMass);
    expect(converted).toBeDefined();
    expect(roundLike(converted ?? Number.NaN, value)).toBe(expected);
  });

  it('does not convert across dimensions, or between mass and molar concentrations without a molar mass', () => {
    expect(convertUnit(1, 'kg', 'cm')).toBeUndefined();
    expect(convertUnit(99, 'mg/dL', 'mmol/L')).toBeUndefined();
    expect(convertUnit(1, 'kg', 'mmol/L', 180)).toBeUndefined();
    expect(convertUnit(1, '/min', 'kg')).toBeUndefined();
    expect(convertUnit(5, 'kg', 'kg')).toBe(5);
  });
});
