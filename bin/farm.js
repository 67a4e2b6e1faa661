#!/usr/bin/env node
'use strict';
// The `farm` command, compiled by `npm run build` into dist/.
require('../dist/apps/cli/src/main.js');
