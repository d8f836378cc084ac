export const LIFTOFF_VERSION = '0.1.0';
