'use strict';
// `require('nserve')` from CommonJS. nserve is an ES module: Node.js 20.19+, 22.12+ and 24 load it
// with require() (require(esm)); older versions cannot, and this says so in one line instead of a
// bare ERR_REQUIRE_ESM.
try {
  module.exports = require('../dist/src/index.js');
} catch (err) {
  if (err && err.code === 'ERR_REQUIRE_ESM') {
    throw Object.assign(
      new Error(
        `nserve is an ES module: require('nserve') needs Node.js 20.19+ or 22.12+ (this is ${process.version}); use import('nserve') or a newer Node.js`,
      ),
      { code: 'ERR_REQUIRE_ESM' },
    );
  }
  throw err;
}
