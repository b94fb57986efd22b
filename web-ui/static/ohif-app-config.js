/* pacsbox: the OHIF viewer's configuration, served at /ohif/app-config.js in place of the
 * package's own (firmware/web/src/ohif.rs). OHIF runs under /ohif/ and reads this box's own
 * DICOMweb on the same origin, so the browser's session cookie authenticates every request
 * and no token is ever placed in the page. No other data source (local files, ?url=) is
 * enabled: the viewer shows this box's studies only. */
(function () {
  var origin = window.location.origin;
  window.config = {
    name: 'pacsbox',
    routerBasename: '/ohif',
    extensions: [],
    modes: [],
    customizationService: {},
    showStudyList: true,
    // The box is a clinic appliance: OHIF's "investigational use" dialog would stop every
    // session; the clinic's own terms are on our login page.
    investigationalUseDialog: { option: 'never' },
    maxNumberOfWebWorkers: 2,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    groupEnabledModesFirst: true,
    // HTTP/1.1 to one small box: a few requests at a time.
    maxNumRequests: { interaction: 10, thumbnail: 4, prefetch: 4 },
    showErrorDetails: 'dev',
    defaultDataSourceName: 'pacsbox',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'pacsbox',
        configuration: {
          friendlyName: 'pacsbox',
          name: 'pacsbox',
          qidoRoot: origin + '/dicom-web',
          wadoRoot: origin + '/dicom-web',
          wadoUriRoot: origin + '/wado',
          qidoSupportsIncludeField: true,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: false,
          supportsWildcard: true,
          staticWado: false,
          singlepart: 'bulkdata,video',
          bulkDataURI: { enabled: true, relativeResolution: 'studies' },
          omitQuotationForMultipartRequest: true,
        },
      },
    ],
  };
})();
