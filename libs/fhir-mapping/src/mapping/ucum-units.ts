/** UCUM, the unit system FHIR Quantities should use (http://hl7.org/fhir/R4/datatypes.html#Quantity). */
export const UCUM_SYSTEM = 'http://unitsofmeasure.org';

/**
 * Free-text units EHRs send -> UCUM code, for the common clinical units. Looked up lower-cased
 * and trimmed; UCUM codes themselves are in the table too so `MG/DL` is found.
 */
// prettier-ignore
const FREE_TEXT_UNITS: Readonly<Record<string, string>> = {
  // mass
  kg: 'kg', kgs: 'kg', kilogram: 'kg', kilograms: 'kg',
  g: 'g', gm: 'g', gram: 'g', grams: 'g',
  mg: 'mg', milligram: 'mg', milligrams: 'mg',
  ug: 'ug', mcg: 'ug', 'µg': 'ug', microgram: 'ug', micrograms: 'ug',
  lb: '[lb_av]', lbs: '[lb_av]', pound: '[lb_av]', pounds: '[lb_av]', '[lb_av]': '[lb_av]',
  oz: '[oz_av]', ounce: '[oz_av]', ounces: '[oz_av]', '[oz_av]': '[oz_av]',
  // length
  m: 'm', cm: 'cm', mm: 'mm',
  in: '[in_i]', inch: '[in_i]', inches: '[in_i]', '[in_i]': '[in_i]', '"': '[in_i]',
  ft: '[ft_i]', foot: '[ft_i]', feet: '[ft_i]', '[ft_i]': '[ft_i]',
  // temperature
  cel: 'Cel', c: 'Cel', '°c': 'Cel', degc: 'Cel', 'deg c': 'Cel', celsius: 'Cel',
  '[degf]': '[degF]', f: '[degF]', '°f': '[degF]', degf: '[degF]', 'deg f': '[degF]', fahrenheit: '[degF]',
  k: 'K', kelvin: 'K',
  // rates
  '/min': '/min', bpm: '/min', 'beats/min': '/min', 'beats per minute': '/min', 'breaths/min': '/min',
  'breaths per minute': '/min', 'per min': '/min', 'per minute': '/min', '{beats}/min': '{beats}/min',
  '{breaths}/min': '{breaths}/min',
  // pressure
  'mm[hg]': 'mm[Hg]', mmhg: 'mm[Hg]', 'mm hg': 'mm[Hg]', kpa: 'kPa',
  // fractions
  '%': '%', percent: '%', pct: '%',
  // concentrations
  'mg/dl': 'mg/dL', 'g/dl': 'g/dL', 'ug/dl': 'ug/dL', 'mcg/dl': 'ug/dL', 'g/l': 'g/L', 'mg/l': 'mg/L',
  'ng/ml': 'ng/mL', 'ug/ml': 'ug/mL', 'mcg/ml': 'ug/mL', 'pg/ml': 'pg/mL', 'ng/dl': 'ng/dL',
  'mmol/l': 'mmol/L', 'umol/l': 'umol/L', 'µmol/l': 'umol/L', 'nmol/l': 'nmol/L', 'pmol/l': 'pmol/L',
  'mol/l': 'mol/L', 'meq/l': 'meq/L', 'u/l': 'U/L', 'iu/l': '[IU]/L', 'miu/ml': 'm[IU]/mL', 'uiu/ml': 'u[IU]/mL',
  'k/ul': '10*3/uL', '10*3/ul': '10*3/uL', 'x10e3/ul': '10*3/uL', 'thou/ul': '10*3/uL', '10^3/ul': '10*3/uL',
  'm/ul': '10*6/uL', '10*6/ul': '10*6/uL', 'x10e6/ul': '10*6/uL', '10^6/ul': '10*6/uL',
  'ml/min/1.73m2': 'mL/min/{1.73_m2}', 'ml/min/{1.73_m2}': 'mL/min/{1.73_m2}',
  fl: 'fL', pg: 'pg',
  // body measures
  'kg/m2': 'kg/m2', 'kg/m^2': 'kg/m2', 'kg/m²': 'kg/m2',
  // volumes
  l: 'L', ml: 'mL', dl: 'dL',
  // time
  s: 's', sec: 's', second: 's', seconds: 's', min: 'min', minute: 'min', minutes: 'min',
  h: 'h', hr: 'h', hrs: 'h', hour: 'h', hours: 'h', d: 'd', day: 'd', days: 'd',
  wk: 'wk', week: 'wk', weeks: 'wk', mo: 'mo', month: 'mo', months: 'mo',
  a: 'a', yr: 'a', yrs: 'a', year: 'a', years: 'a',
};

/** The UCUM code for a free-text unit (or a UCUM code), if the table knows it. */
export function ucumCodeOf(unit: string, extra?: ReadonlyMap<string, string>): string | undefined {
  const key = unit.trim().toLowerCase();
  return extra?.get(key) ?? FREE_TEXT_UNITS[key];
}

/** How a UCUM unit relates to its dimension's base unit: base = value * factor + offset. */
interface UnitScale {
  readonly dimension: string;
  readonly factor: number;
  readonly offset?: number;
}

/** Convertible units. Mass concentration in mg/dL, molar in mmol/L, so molar mass bridges the two. */
const SCALES: Readonly<Record<string, UnitScale>> = {
  kg: { dimension: 'mass', factor: 1000 },
  g: { dimension: 'mass', factor: 1 },
  mg: { dimension: 'mass', factor: 1e-3 },
  ug: { dimension: 'mass', factor: 1e-6 },
  '[lb_av]': { dimension: 'mass', factor: 453.59237 },
  '[oz_av]': { dimension: 'mass', factor: 28.349523125 },
  m: { dimension: 'length', factor: 1 },
  cm: { dimension: 'length', factor: 0.01 },
  mm: { dimension: 'length', factor: 0.001 },
  '[in_i]': { dimension: 'length', factor: 0.0254 },
  '[ft_i]': { dimension: 'length', factor: 0.3048 },
  Cel: { dimension: 'temperature', factor: 1 },
  '[degF]': { dimension: 'temperature', factor: 5 / 9, offset: -32 * (5 / 9) },
  K: { dimension: 'temperature', factor: 1, offset: -273.15 },
  'mm[Hg]': { dimension: 'pressure', factor: 1 },
  kPa: { dimension: 'pressure', factor: 7.500615758 },
  'g/dL': { dimension: 'mass-concentration', factor: 1000 },
  'mg/dL': { dimension: 'mass-concentration', factor: 1 },
  'ug/dL': { dimension: 'mass-concentration', factor: 1e-3 },
  'ng/dL': { dimension: 'mass-concentration', factor: 1e-6 },
  'g/L': { dimension: 'mass-concentration', factor: 100 },
  'mg/L': { dimension: 'mass-concentration', factor: 0.1 },
  'ug/mL': { dimension: 'mass-concentration', factor: 0.1 },
  'ng/mL': { dimension: 'mass-concentration', factor: 1e-4 },
  'pg/mL': { dimension: 'mass-concentration', factor: 1e-7 },
  'mol/L': { dimension: 'molar-concentration', factor: 1000 },
  'mmol/L': { dimension: 'molar-concentration', factor: 1 },
  'umol/L': { dimension: 'molar-concentration', factor: 1e-3 },
  'nmol/L': { dimension: 'molar-concentration', factor: 1e-6 },
  'pmol/L': { dimension: 'molar-concentration', factor: 1e-9 },
  L: { dimension: 'volume', factor: 1 },
  dL: { dimension: 'volume', factor: 0.1 },
  mL: { dimension: 'volume', factor: 0.001 },
};

/** Human-readable `unit` text for a UCUM code we convert to. */
// prettier-ignore
export const UCUM_DISPLAY: Readonly<Record<string, string>> = {
  '[lb_av]': 'lb', '[oz_av]': 'oz', '[in_i]': 'in', '[ft_i]': 'ft', Cel: '°C', '[degF]': '°F', 'mm[Hg]': 'mmHg',
};

/** True when `to` is a unit we can convert to (from some unit). */
export function isConvertibleUnit(code: string): boolean {
  return code in SCALES;
}

/**
 * Converts `value` from one UCUM unit to another; `molarMass` (g/mol) bridges mg/dL-style mass
 * and mmol/L-style molar concentrations. Undefined when the units are not convertible.
 */
export function convertUnit(value: number, from: string, to: string, molarMass?: number): number | undefined {
  if (from === to) return value;
  const source = SCALES[from];
  const target = SCALES[to];
  if (!source || !target) return undefined;
  let base = value * source.factor + (source.offset ?? 0);
  if (source.dimension !== target.dimension) {
    if (molarMass === undefined) return undefined;
    // mg/dL -> mmol/L: x mg/dL = 10x mg/L = 10x / M mmol/L (and back).
    if (source.dimension === 'mass-concentration' && target.dimension === 'molar-concentration') {
      base = (base * 10) / molarMass;
    } else if (source.dimension === 'molar-concentration' && target.dimension === 'mass-concentration') {
      base = (base * molarMass) / 10;
    } else {
      return undefined;
    }
  }
  return (base - (target.offset ?? 0)) / target.factor;
}

/** Rounds a converted value to the input's significant digits (at least 3), so 98.6 [degF] -> 37 Cel. */
export function roundLike(converted: number, original: number): number {
  const digits = Math.max(3, significantDigits(original));
  return Number(converted.toPrecision(Math.min(digits, 15)));
}

function significantDigits(value: number): number {
  const text = Math.abs(value).toExponential().split('e')[0] ?? '';
  return text.replace('.', '').replace(/^0+/, '').length;
}
